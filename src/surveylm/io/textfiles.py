"""Reading text and CSV files so that a bad file fails loudly, naming where.

pandas' CSV reader silently pads a row with too *few* fields with NaN, and its decode
errors give offsets relative to an internal buffer. These helpers decode the whole file
once (so a wrong encoding is reported with its absolute byte offset and line) and check
every CSV row against the header (so a truncated or ragged row is reported with its line)
before anything is parsed.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

from surveylm.errors import DataError, FileFormatError, where


def read_text(path: str | Path, encoding: str = "utf-8") -> str:
    """The decoded contents of ``path`` (a UTF-8 byte-order mark is dropped).

    Raises:
        FileFormatError: missing or unreadable file, unknown encoding, or bytes that are
            not valid in ``encoding`` (naming the byte offset and line, and suggesting
            ``encoding=``).
    """
    path = Path(path)
    loc = where(file=path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise FileFormatError(f"{loc}no such file") from None
    except IsADirectoryError:
        raise FileFormatError(f"{loc}is a folder, expected a file") from None
    except OSError as exc:
        raise FileFormatError(f"{loc}cannot read the file ({exc.strerror})") from None
    utf8 = encoding.lower().replace("_", "-") in ("utf-8", "utf8")
    try:
        return raw.decode("utf-8-sig" if utf8 else encoding)
    except LookupError:
        raise FileFormatError(f"{loc}unknown encoding {encoding!r}") from None
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise FileFormatError(
            f"{loc}not valid {encoding}: byte 0x{raw[exc.start]:02x} at byte offset "
            f"{exc.start} (line {line}); pass the file's encoding, e.g. encoding='latin-1'"
        ) from None


def csv_rows(
    text: str, path: str | Path, *, keep: bool = True
) -> tuple[list[str], list[tuple[int, list[str]]]]:
    """Split CSV text into its header and ``(line number, fields)`` rows, checking both.

    With ``keep=False`` the rows are only checked, and an empty list is returned.

    Blank lines are skipped (as pandas does). Quoted fields may span lines; the line
    number is where the row ends.

    Raises:
        FileFormatError: an empty file, a row whose field count differs from the header's
            (a truncated or ragged row), or malformed quoting.
        DataError: a column name used twice (pandas would silently rename it ``x.1``).
    """
    if not text.strip():
        raise FileFormatError(f"{where(file=path)}the file is empty, expected a header row")
    reader = csv.reader(io.StringIO(text))
    rows: list[tuple[int, list[str]]] = []
    n_rows = 0
    try:
        header = next(reader)
        seen: dict[str, int] = {}
        for i, col in enumerate(header, start=1):
            if col in seen:
                raise DataError(
                    f"{where(file=path, column=col)}duplicate column name (columns {seen[col]} "
                    f"and {i}); question ids must be unique"
                )
            seen[col] = i
        for row in reader:
            if not row:
                continue
            n_rows += 1
            if len(row) != len(header):
                raise FileFormatError(
                    f"{where(file=path, row=n_rows)}line {reader.line_num} has "
                    f"{len(row)} fields, expected {len(header)} as in the header "
                    "(truncated or ragged row?)"
                )
            if keep:
                rows.append((reader.line_num, row))
    except csv.Error as exc:
        raise FileFormatError(
            f"{where(file=path)}line {reader.line_num}: malformed CSV ({exc})"
        ) from None
    return header, rows
