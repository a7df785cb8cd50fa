"""The lake: Parquet files under a local folder or an S3 bucket, one pyarrow code path."""

from __future__ import annotations

from urllib.parse import urlparse

import dagster as dg
import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from onering_assets.errors import ConfigError

DATA_FILE = "data.parquet"


class LakeResource(dg.ConfigurableResource):
    """Where Bronze lives: ``file:///abs/dir`` locally, ``s3://bucket/prefix`` on MinIO/S3.

    One file per partition (``<layer>/<table>/month=2013-01/data.parquet``), written to a
    temporary name and moved into place, so a re-ingest replaces a partition whole and a
    crash never leaves half a file where readers look.
    """

    url: str
    s3_endpoint_url: str | None = None
    # Where ClickHouse reaches the same bucket (e.g. http://minio:9000 inside compose).
    clickhouse_s3_endpoint_url: str | None = None
    aws_access_key_id: str | None = None
    aws_secret_access_key: str | None = None

    def _filesystem(self) -> tuple[pafs.FileSystem, str]:
        parsed = urlparse(self.url)
        if parsed.scheme == "file":
            return pafs.LocalFileSystem(), parsed.path.rstrip("/")
        if parsed.scheme == "s3":
            endpoint = urlparse(self.s3_endpoint_url) if self.s3_endpoint_url else None
            fs = pafs.S3FileSystem(
                access_key=self.aws_access_key_id,
                secret_key=self.aws_secret_access_key,
                endpoint_override=endpoint.netloc if endpoint else None,
                scheme=endpoint.scheme if endpoint else "https",
                allow_bucket_creation=True,
            )
            return fs, f"{parsed.netloc}{parsed.path}".rstrip("/")
        raise ConfigError(f"Lake url {self.url!r} must start with file:// or s3://.")

    @staticmethod
    def relative_path(layer: str, table: str, partition: str | None) -> str:
        folder = f"{layer}/{table}" + (f"/month={partition}" if partition else "")
        return f"{folder}/{DATA_FILE}"

    def uri(self, layer: str, table: str, partition: str | None = None) -> str:
        """The storage address of one partition (or the whole table folder)."""
        base = self.url.rstrip("/")
        if partition is None:
            return f"{base}/{layer}/{table}"
        return f"{base}/{self.relative_path(layer, table, partition)}"

    def write(self, layer: str, table: str, partition: str | None, data: pa.Table) -> str:
        """Atomically replace one partition (or the whole unpartitioned table)."""
        fs, base = self._filesystem()
        final = f"{base}/{self.relative_path(layer, table, partition)}"
        fs.create_dir(final.rsplit("/", 1)[0], recursive=True)
        tmp = f"{final}.tmp"
        pq.write_table(data, tmp, filesystem=fs, compression="zstd")
        fs.move(tmp, final)
        return final

    def quarantine(self, layer: str, table: str, batch_id: str, label: str, data: pa.Table) -> str:
        """Keep rejected input whole under ``quarantine/`` so nothing is lost."""
        fs, base = self._filesystem()
        folder = f"{base}/quarantine/{layer}/{table}/{batch_id}"
        fs.create_dir(folder, recursive=True)
        path = f"{folder}/{label}.parquet"
        pq.write_table(data, path, filesystem=fs, compression="zstd")
        return path

    def read(self, layer: str, table: str, partition: str | None = None) -> pa.Table:
        fs, base = self._filesystem()
        return pq.read_table(f"{base}/{self.relative_path(layer, table, partition)}", filesystem=fs)

    def exists(self, layer: str, table: str, partition: str | None = None) -> bool:
        fs, base = self._filesystem()
        path = f"{base}/{self.relative_path(layer, table, partition)}"
        return fs.get_file_info(path).type == pafs.FileType.File

    def clickhouse_source(
        self, layer: str, table: str, partitions: list[str] | None
    ) -> tuple[str, dict[str, str]]:
        """A ClickHouse table function reading the given partitions, plus its parameters."""
        if partitions:
            glob = ",".join(partitions)
            rel = self.relative_path(
                layer, table, "{" + glob + "}" if len(partitions) > 1 else glob
            )
        else:
            rel = self.relative_path(layer, table, None)
        parsed = urlparse(self.url)
        if parsed.scheme == "file":
            path = f"{parsed.path.rstrip('/')}/{rel}"
            return "file({lake_path:String}, 'Parquet')", {"lake_path": path}
        endpoint = self.clickhouse_s3_endpoint_url or self.s3_endpoint_url
        endpoint = (endpoint or "https://s3.amazonaws.com").rstrip("/")
        url = f"{endpoint}/{parsed.netloc}{parsed.path.rstrip('/')}/{rel}"
        return (
            "s3({lake_url:String}, {lake_key:String}, {lake_secret:String}, 'Parquet')",
            {
                "lake_url": url,
                "lake_key": self.aws_access_key_id or "",
                "lake_secret": self.aws_secret_access_key or "",
            },
        )
