"""Answer models: baselines, tabular classifiers and language models behind AnswerModel."""
