"""surveylm: fine-tune language models on survey data to simulate how subpopulations
answer survey questions and to impute the answers of respondents who did not answer.

Every model predicts ``p(option | question, context)``; see DESIGN.md.
"""

from surveylm.errors import SurveyLMError
from surveylm.items import Group, ItemSet, build_group_items, build_respondent_items
from surveylm.models.base import AnswerModel, Predictions
from surveylm.survey import Question, Survey

__version__ = "0.1.0"

__all__ = [
    "AnswerModel",
    "Group",
    "ItemSet",
    "Predictions",
    "Question",
    "Survey",
    "SurveyLMError",
    "__version__",
    "build_group_items",
    "build_respondent_items",
]
