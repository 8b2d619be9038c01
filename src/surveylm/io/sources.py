"""Where a survey comes from: a built-in dataset's name or a survey file.

:func:`load_survey_source` is the one place that turns what a user wrote (``surveylm
fit anes1996``, ``dataset: data/poll.sav`` in a config) into a
:class:`~surveylm.survey.Survey`; the CLI and both benchmark runners call it. The
built-in datasets live in :mod:`surveylm.datasets`, the file readers in
:mod:`surveylm.io.surveys`.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from surveylm.errors import DataError

if TYPE_CHECKING:
    from surveylm.codebook import Codebook
    from surveylm.survey import Survey


def load_survey_source(
    source: str | Path,
    codebook: Codebook | str | Path | None = None,
    *,
    weight: str | None = None,
) -> Survey:
    """A built-in dataset by name, or a survey file (csv, parquet, sav, dta) + codebook.

    An existing file wins over a built-in dataset of the same name.

    Args:
        source: A name in :data:`surveylm.datasets.DATASETS` or a survey file's path.
        codebook: The file's codebook (ignored for a built-in dataset).
        weight: The file's weight column, else the codebook's.

    Raises:
        DataError: neither an existing file nor a built-in dataset's name.
    """
    from surveylm.datasets import DATASETS, load_dataset

    name = str(source)
    if name in DATASETS and not Path(source).exists():
        return load_dataset(name)
    if not Path(source).exists():
        raise DataError(f"no such file or built-in dataset '{name}'; built-in: "
                        f"{', '.join(DATASETS)} (surveylm datasets)")  # fmt: skip
    from surveylm.io.surveys import read_survey

    return read_survey(source, codebook, weight=weight)
