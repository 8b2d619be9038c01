import numpy as np
import pandas as pd
import pytest

from surveylm.errors import CodebookError, DataError
from surveylm.survey import Question, Survey, kish_effective_n


def test_question_validates_options_and_ordinal():
    q = Question("q", "How?", ("Low", "Mid", "High", "Don't know"), (1, 2, 3, -1))
    assert q.n_options == 4 and q.is_ordinal and q.index("Mid") == 1
    with pytest.raises(CodebookError, match="duplicate options"):
        Question("q", "How?", ("a", "a"))
    with pytest.raises(CodebookError, match="2 ordinal values for 3 options"):
        Question("q", "How?", ("a", "b", "c"), (1, 2))
    # the order comes from the values (SubPOP: descending, fractional, unequal spacing)
    assert Question("q", "How?", ("a", "b", "c"), (2.0, 1.5, 1.0)).ordinal == (2.0, 1.5, 1.0)
    with pytest.raises(CodebookError, match=r"2\+ distinct non-negative"):
        Question("q", "How?", ("a", "b", "c"), (1, 1, -1))
    with pytest.raises(CodebookError, match="at least 2 options"):
        Question("q", "How?", ("a",))


def test_question_round_trips_through_dict():
    q = Question("q", "How?", ("a", "b"), (0, 1), "src", "Q label")
    assert Question.from_dict(q.to_dict()) == q


def test_survey_weighted_distribution_and_kish(toy_survey):
    shares, n, n_eff = toy_survey.weighted_distribution("vote")
    codes = toy_survey.codes("vote")
    w = toy_survey.weights.to_numpy()
    keep = codes >= 0
    expected = np.array([w[keep & (codes == k)].sum() for k in range(2)]) / w[keep].sum()
    np.testing.assert_allclose(shares, expected)
    assert n == 115
    assert n_eff == pytest.approx(w[keep].sum() ** 2 / (w[keep] ** 2).sum())
    assert n_eff < n  # unequal weights cost precision


def test_kish_effective_n_equal_weights():
    assert kish_effective_n(np.full(10, 3.0)) == pytest.approx(10)


def test_unknown_answer_label_names_row_and_column():
    q = Question("vote", "Who?", ("A", "B"))
    data = pd.DataFrame({"vote": ["A", "B", "C"]})
    with pytest.raises(DataError, match=r"row 3, column 'vote': answer 'C' is not in the codebook"):
        Survey(data, [q])


def test_duplicate_question_ids_refused():
    q = Question("vote", "Who?", ("A", "B"))
    with pytest.raises(CodebookError, match="duplicate question ids 'vote'"):
        Survey(pd.DataFrame({"vote": ["A"]}), [q, q])


@pytest.mark.parametrize("bad", [-1.0, np.nan, np.inf])
def test_bad_weights_refused(bad):
    q = Question("vote", "Who?", ("A", "B"))
    with pytest.raises(DataError, match="row 2, column 'weight'"):
        Survey(pd.DataFrame({"vote": ["A", "B"]}), [q], weights=[1.0, bad])


def test_numeric_codes_match_string_labels():
    q = Question("x", "X?", ("1", "2", "3"))
    s = Survey(pd.DataFrame({"x": [1.0, 3.0, np.nan]}), [q])
    assert s.codes("x").tolist() == [0, 2, -1]


def test_subset_keeps_questions_and_weights(toy_survey):
    sub = toy_survey.subset(toy_survey.answered("vote"))
    assert sub.n_respondents == 115 and sub.answered("vote").all()
    assert sub.weights.index.equals(sub.data.index)
