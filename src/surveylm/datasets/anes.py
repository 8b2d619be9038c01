"""ANES 1996: the American National Election Studies 1996 subset shipped with statsmodels.

944 respondents who said they would vote for Bill Clinton or Bob Dole (public domain;
``statsmodels.datasets.anes96``). Option labels are those of the statsmodels codebook;
question wordings are written from the codebook's variable descriptions (the subset does
not ship the questionnaire), and are marked as such in each question's text source.

The subset has no survey weights (every respondent weighs 1) and no missing answers;
imputation scenarios create missingness on purpose (see ``surveylm.missingness``).

Education labels follow the ANES 1996 codebook's 7-category summary rather than the
statsmodels docstring (see ``_EDUC_OPTIONS``).

Besides the original variables, three coarse versions are derived for group items, whose
cells must hold at least ``min_n`` respondents: ``party`` (PID in 3 groups), ``educ3``
and ``age_group``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from surveylm.survey import Question, Survey

SOURCE = "ANES 1996"

_LR_OPTIONS = (
    "Extremely liberal", "Liberal", "Slightly liberal", "Moderate",
    "Slightly conservative", "Conservative", "Extremely conservative",
)  # fmt: skip

_PID_OPTIONS = (
    "Strong Democrat", "Weak Democrat", "Independent-Democrat", "Independent-Independent",
    "Independent-Republican", "Weak Republican", "Strong Republican",
)  # fmt: skip

# ANES 1996's 7-category education summary (V960610). statsmodels' docstring labels codes
# 5-7 "College degree", "Master's degree", "PhD", which would make 13 % of respondents
# PhDs; the ANES codebook's categories are the ones below (AA, BA-level, advanced degree).
_EDUC_OPTIONS = (
    "8 grades or less", "9-11 grades, no diploma", "High school diploma or equivalent",
    "More than 12 years, no degree", "Junior or community college degree (AA)",
    "BA-level degree", "Advanced degree",
)  # fmt: skip

_INCOME_OPTIONS = (
    "None or less than $2,999", "$3,000-$4,999", "$5,000-$6,999", "$7,000-$8,999",
    "$9,000-$9,999", "$10,000-$10,999", "$11,000-$11,999", "$12,000-$12,999",
    "$13,000-$13,999", "$14,000-$14,999", "$15,000-$16,999", "$17,000-$19,999",
    "$20,000-$21,999", "$22,000-$24,999", "$25,000-$29,999", "$30,000-$34,999",
    "$35,000-$39,999", "$40,000-$44,999", "$45,000-$49,999", "$50,000-$59,999",
    "$60,000-$74,999", "$75,000-$89,999", "$90,000-$104,999", "$105,000 and over",
)  # fmt: skip

_TV_OPTIONS = tuple(f"{d} days" if d != 1 else "1 day" for d in range(8))

_PARTY_OPTIONS = ("Democrat", "Independent", "Republican")
_EDUC3_OPTIONS = ("High school or less", "Some college (incl. AA)", "Bachelor's degree or more")
_AGE_OPTIONS = ("18-29", "30-44", "45-59", "60 or older")


def _ordinal(k: int) -> tuple[float, ...]:
    return tuple(float(i) for i in range(1, k + 1))


QUESTIONS: tuple[Question, ...] = (
    Question(
        "vote",
        "If the presidential election were held today, would you vote for Bill Clinton, "
        "the Democrat, or Bob Dole, the Republican?",
        ("Bill Clinton", "Bob Dole"),
        None,
        SOURCE,
        "Expected vote",
    ),
    Question(
        "PID",
        "Generally speaking, do you think of yourself as a Republican, a Democrat, an "
        "Independent, or what? (7-point party identification)",
        _PID_OPTIONS,
        _ordinal(7),
        SOURCE,
        "Party identification",
    ),
    Question(
        "selfLR",
        "Where would you place yourself on a scale from extremely liberal to extremely "
        "conservative?",
        _LR_OPTIONS,
        _ordinal(7),
        SOURCE,
        "Political views",
    ),
    Question(
        "ClinLR",
        "Where would you place Bill Clinton on a scale from extremely liberal to extremely "
        "conservative?",
        _LR_OPTIONS,
        _ordinal(7),
        SOURCE,
        "Placement of Bill Clinton",
    ),
    Question(
        "DoleLR",
        "Where would you place Bob Dole on a scale from extremely liberal to extremely "
        "conservative?",
        _LR_OPTIONS,
        _ordinal(7),
        SOURCE,
        "Placement of Bob Dole",
    ),
    Question(
        "TVnews",
        "How many days in the past week did you watch the news on TV?",
        _TV_OPTIONS,
        _ordinal(8),
        SOURCE,
        "Days watching TV news per week",
    ),
    Question(
        "educ",
        "What is the highest grade of school or year of college you have completed?",
        _EDUC_OPTIONS,
        _ordinal(7),
        SOURCE,
        "Education",
    ),
    Question(
        "income",
        "What was the total income of your household in 1995, before taxes?",
        _INCOME_OPTIONS,
        _ordinal(24),
        SOURCE,
        "Household income",
    ),
    Question(
        "party",
        "Party identification (3 groups: strong and weak Democrats, independents including "
        "leaners, strong and weak Republicans)",
        _PARTY_OPTIONS,
        None,
        SOURCE,
        "Party",
    ),
    Question(
        "educ3",
        "Education (3 groups)",
        _EDUC3_OPTIONS,
        _ordinal(3),
        SOURCE,
        "Education level",
    ),
    Question(
        "age_group",
        "Age group",
        _AGE_OPTIONS,
        _ordinal(4),
        SOURCE,
        "Age group",
    ),
)


def load_anes1996() -> Survey:
    """Load the ANES 1996 subset shipped with statsmodels as a :class:`Survey`.

    Returns:
        A survey of 944 respondents with questions ``vote`` (Clinton/Dole), ``PID``
        (7-point party identification), ``selfLR``/``ClinLR``/``DoleLR`` (7-point
        liberal–conservative placements), ``TVnews`` (days a week), ``educ`` (7 levels),
        ``income`` (24 brackets), the derived ``party``, ``educ3`` and ``age_group``, and
        the numeric covariates ``age`` and ``popul`` (census place population in 1000s).
    """
    from statsmodels.datasets import anes96

    raw = anes96.load_pandas().data
    idx = pd.Index([f"anes96-{i + 1:04d}" for i in range(len(raw))], name="respondent")
    code = {
        c: raw[c].to_numpy().astype(int)
        for c in ("vote", "PID", "selfLR", "ClinLR", "DoleLR", "TVnews", "educ", "income")
    }
    labels = {
        "vote": np.array(QUESTIONS[0].options)[code["vote"]],
        "PID": np.array(_PID_OPTIONS)[code["PID"]],
        "selfLR": np.array(_LR_OPTIONS)[code["selfLR"] - 1],
        "ClinLR": np.array(_LR_OPTIONS)[code["ClinLR"] - 1],
        "DoleLR": np.array(_LR_OPTIONS)[code["DoleLR"] - 1],
        "TVnews": np.array(_TV_OPTIONS)[code["TVnews"]],
        "educ": np.array(_EDUC_OPTIONS)[code["educ"] - 1],
        "income": np.array(_INCOME_OPTIONS)[code["income"] - 1],
        "party": np.array(_PARTY_OPTIONS)[np.digitize(code["PID"], [2, 5])],
        "educ3": np.array(_EDUC3_OPTIONS)[np.digitize(code["educ"], [4, 6])],
        "age_group": np.array(_AGE_OPTIONS)[np.digitize(raw["age"].to_numpy(), [30, 45, 60])],
    }
    data = pd.DataFrame(labels, index=idx)
    data["age"] = raw["age"].to_numpy().astype(int)
    data["popul"] = raw["popul"].to_numpy()
    return Survey(data, QUESTIONS, weights=None, name=SOURCE, covariates=["age", "popul"],
                  covariate_labels={"age": "Age in years",
                                    "popul": "Population of place of residence (1000s)"})
