"""The botocore client settings of the S3 archive, shared by settings.py and the tests.

The archive copy hashes every byte with sha256 itself. boto3's own per-request work on
top of that (a CRC of every part, and over plain http a sha256 of every part for the
signature) costs as much CPU again as the copy's own hashing (docs/benchmarks.md), and
S3-compatible stores such as TOS and older MinIO refuse boto3's default CRC checksums.
So: checksums only where the S3 API requires them (the standard AWS_REQUEST_CHECKSUM_
CALCULATION and AWS_RESPONSE_CHECKSUM_VALIDATION variables override that), and the
payload left out of the signature, as boto3 already does over https;
ARKDASH_S3_SIGN_PAYLOAD=true puts it back for a plain-http endpoint. The writer HEADs
every completed object and
checks its length (tasks_app/lib/storage.py).
"""

from __future__ import annotations

from botocore.config import Config

from .env import envbool, envint, envstr


def client_config(*, addressing_style: str = "path") -> Config:
    return Config(
        signature_version="s3v4",
        s3={
            "addressing_style": addressing_style,
            "payload_signing_enabled": envbool("ARKDASH_S3_SIGN_PAYLOAD", False),
        },
        request_checksum_calculation=envstr("AWS_REQUEST_CHECKSUM_CALCULATION", "when_required"),
        response_checksum_validation=envstr("AWS_RESPONSE_CHECKSUM_VALIDATION", "when_required"),
        # Every remote call has a timeout; retries are the archive's own (backoff, sweeper).
        connect_timeout=envint("ARKDASH_S3_CONNECT_TIMEOUT_SECONDS", 10),
        read_timeout=envint("ARKDASH_S3_READ_TIMEOUT_SECONDS", 60),
        retries={"mode": "standard", "max_attempts": 3},
    )
