"""One lake file: how it is written, and why it cannot be read (a corrupt footer or data).

Files are written with Parquet page checksums (CRC32 of each page, about 0.4 KB on a month
file and no measurable time), so a byte changed inside a page is found by reading the page,
not only damage that breaks decoding. Readers that do not verify checksums (ClickHouse)
read the files as before.
"""

from __future__ import annotations

import re
from urllib.parse import urlparse

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

DATA_FILE = "data.parquet"
# Where ClickHouse names the file it failed to read, and a lake file's layer/table/month.
ENGINE_FILE = re.compile(r"\(in file/uri\s+([^)]+)\)")
# Besides a month's data.parquet, a streamed batch writes stream-<batch>.parquet beside it.
LAKE_FILE = re.compile(r"([a-z_]+)/([a-z0-9_]+)/(?:month=([0-9-]+)/)?[a-z0-9_-]+\.parquet$")
# Every file of a month, as ClickHouse globs it (data.parquet and streamed batches).
MONTH_FILES = "*.parquet"
# Rows decoded at a time by ``data_error``: memory stays bounded whatever the file's size.
_CHECK_BATCH_ROWS = 65_536


def parquet_files(fs: pafs.FileSystem, folder: str) -> list[str]:
    """The ``*.parquet`` files directly in ``folder`` (none if it does not exist), by name."""
    selector = pafs.FileSelector(folder, allow_not_found=True)
    return sorted(
        info.path
        for info in fs.get_file_info(selector)
        if info.type == pafs.FileType.File and info.base_name.endswith(".parquet")
    )


_WRITE_OPTIONS = {"compression": "zstd", "write_page_checksum": True}


def write_parquet(data: pa.Table, path: str, fs: pafs.FileSystem) -> None:
    """Write one lake file: zstd, with page checksums."""
    pq.write_table(data, path, filesystem=fs, **_WRITE_OPTIONS)


def parquet_writer(path: str, schema: pa.Schema, fs: pafs.FileSystem) -> pq.ParquetWriter:
    """A lake file written a piece at a time, as ``write_parquet`` writes a whole one."""
    return pq.ParquetWriter(path, schema, filesystem=fs, **_WRITE_OPTIONS)


def read_parquet(path: str, fs: pafs.FileSystem) -> pa.Table:
    """Read one lake file whole, verifying its page checksums where it has them."""
    return pq.read_table(path, filesystem=fs, page_checksum_verification=True)


def footer_error(fs: pafs.FileSystem, path: str) -> str | None:
    """Why the Parquet footer of ``path`` cannot be read; None if it can or there is no file."""
    try:
        pq.read_metadata(path, filesystem=fs)
    except FileNotFoundError:
        return None
    except (pa.ArrowException, OSError) as err:
        return reason(err)
    return None


def footer_rows(fs: pafs.FileSystem, path: str) -> int:
    """Rows in a Parquet file, from its footer.

    0 if there is no file or its footer cannot be read: readers name that damage themselves.
    """
    try:
        return pq.read_metadata(path, filesystem=fs).num_rows
    except (FileNotFoundError, pa.ArrowException, OSError):
        return 0


def data_error(fs: pafs.FileSystem, path: str) -> str | None:
    """Why ``path`` cannot be read whole; None if every page decodes or there is no file.

    The footer first, then every page of every column: decoded, and checked against its
    checksum where the file has them. This finds damage behind a valid footer (bytes changed
    inside a column chunk), which the footer alone cannot show. It costs a full read (about
    10-15 ms for a month of flights, 27k rows, 0.5 MB), so it runs only where a file is about
    to be replaced anyway, never on every read.
    """
    try:
        with fs.open_input_file(path) as source:
            parquet = pq.ParquetFile(source, page_checksum_verification=True)
            rows = 0
            for batch in parquet.iter_batches(batch_size=_CHECK_BATCH_ROWS, use_threads=False):
                rows += batch.num_rows
            if rows != parquet.metadata.num_rows:
                return f"{rows} rows decoded, the footer says {parquet.metadata.num_rows}"
    except FileNotFoundError:
        return None
    except (pa.ArrowException, OSError) as err:
        return reason(err)
    return None


def reason(err: BaseException) -> str:
    """The engine's first line, without the file name it repeats (the message names it)."""
    text = ENGINE_FILE.sub("", str(err))
    text = re.sub(r"^Could not open Parquet input source '[^']*': ", "", text.strip())
    text = re.sub(r"^Code: \d+\. DB::Exception: ", "", text)
    text = text.split(": While executing")[0].split(": read stage:")[0]
    first = text.splitlines()[0] if text else type(err).__name__
    return first.split(". Either the file")[0].rstrip(": .")[:200]


def table_function(
    url: str,
    rel: str,
    structure: str | None,
    s3_endpoint_url: str | None,
    key: str | None,
    secret: str | None,
) -> tuple[str, dict[str, str]]:
    """ClickHouse's ``file(…)`` or ``s3(…)`` table function for ``rel`` under the lake ``url``.

    Its values are query parameters (returned beside it), never spliced into the SQL.
    """
    parsed = urlparse(url)
    shape = ", {lake_structure:String}" if structure else ""
    shape_params = {"lake_structure": structure} if structure else {}
    if parsed.scheme == "file":
        path = f"{parsed.path.rstrip('/')}/{rel}"
        return f"file({{lake_path:String}}, 'Parquet'{shape})", {"lake_path": path, **shape_params}
    endpoint = (s3_endpoint_url or "https://s3.amazonaws.com").rstrip("/")
    return (
        f"s3({{lake_url:String}}, {{lake_key:String}}, {{lake_secret:String}}, 'Parquet'{shape})",
        {
            "lake_url": f"{endpoint}/{parsed.netloc}{parsed.path.rstrip('/')}/{rel}",
            "lake_key": key or "",
            "lake_secret": secret or "",
            **shape_params,
        },
    )
