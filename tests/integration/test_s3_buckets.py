"""The S3 API's buckets against a real uploadd, with boto3: creating,
listing, heading and deleting buckets, whose names are whose, listing a
few hundred keys (ListObjectsV2 and version 1) by prefix, delimiter and
page, and a bucket's CORS rules as a browser's preflight meets them."""

from __future__ import annotations

import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from tests.integration.daemon import PASSWORD, add_user
from tests.integration.s3daemon import Key, S3Daemon, error_code, refused, running

pytestmark = pytest.mark.integration

#: The origin ``[s3] cors_origins`` allows on every bucket.
CONFIGURED = "https://files.example.com"


@pytest.fixture(scope="module")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Daemon]:
    yield from running(
        tmp_path_factory.mktemp("s3buckets") / "uploadd",
        f"--s3-cors-origins={CONFIGURED}",
        # Listings are what is tested here, not durability: the few hundred
        # keys are stored without an fsync each.
        "--storage-fsync=false",
    )


def fresh(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def test_a_bucket_is_made_listed_found_and_deleted_when_empty(
    s3: S3Daemon, client: Any
) -> None:
    """CreateBucket (with or without a configuration naming this region),
    ListBuckets, HeadBucket, GetBucketLocation and GetBucketVersioning;
    DeleteBucket refuses a bucket holding objects, then deletes it."""
    name, other = fresh("life"), fresh("life-conf")
    client.create_bucket(Bucket=name)
    client.create_bucket(
        Bucket=other, CreateBucketConfiguration={"LocationConstraint": "us-east-1"}
    )
    listed = client.list_buckets()
    assert {name, other} <= {b["Name"] for b in listed["Buckets"]}
    assert listed["Owner"]["DisplayName"] == "alice"
    head = client.head_bucket(Bucket=name)
    assert head["ResponseMetadata"]["HTTPHeaders"]["x-amz-bucket-region"] == (
        "us-east-1"
    )
    assert client.get_bucket_location(Bucket=name)["LocationConstraint"] is None
    assert "Status" not in client.get_bucket_versioning(Bucket=name)
    client.put_object(Bucket=name, Key="k", Body=b"k")
    assert error_code(refused(client.delete_bucket, Bucket=name)) == "BucketNotEmpty"
    client.delete_object(Bucket=name, Key="k")
    for bucket in (name, other):
        deleted = client.delete_bucket(Bucket=bucket)
        assert deleted["ResponseMetadata"]["HTTPStatusCode"] == 204
    assert error_code(refused(client.head_bucket, Bucket=name)) == "404"
    assert error_code(refused(client.list_objects_v2, Bucket=name)) == "NoSuchBucket"
    s3.settle()


def test_bucket_names_follow_s3s_rules_and_belong_to_one_user(
    s3: S3Daemon, client: Any
) -> None:
    """A name taken by the caller is BucketAlreadyOwnedByYou, by someone
    else BucketAlreadyExists; another user's bucket is AccessDenied; a name
    S3 would refuse is InvalidBucketName; a region other than this one's is
    refused."""
    name = fresh("owned")
    client.create_bucket(Bucket=name)
    assert error_code(refused(client.create_bucket, Bucket=name)) == (
        "BucketAlreadyOwnedByYou"
    )
    add_user(s3.daemon.data_dir, "bob", "write", PASSWORD)
    bob = s3.client(s3.key("bob"))
    assert error_code(refused(bob.create_bucket, Bucket=name)) == (
        "BucketAlreadyExists"
    )
    for call in (bob.list_objects_v2, bob.delete_bucket):
        assert error_code(refused(call, Bucket=name)) == "AccessDenied"
    assert name not in [b["Name"] for b in bob.list_buckets()["Buckets"]]
    for bad in ("ab", "Upper-Case", "a..b", "192.168.5.4", "xn--punycode"):
        assert error_code(refused(client.create_bucket, Bucket=bad)) == (
            "InvalidBucketName"
        ), bad
    error = refused(
        client.create_bucket,
        Bucket=fresh("elsewhere"),
        CreateBucketConfiguration={"LocationConstraint": "eu-west-1"},
    )
    assert error_code(error) == "IllegalLocationConstraintException"


#: A few hundred keys: two years of photos by month, some loose files, and
#: names that only survive URL encoding (spaces, plus signs, accents).
KEYS = sorted(
    [f"photos/{y}/{m:02d}/img-{i:03d}.jpg" for y in (2024, 2025) for m in (1, 2, 3)
     for i in range(40)]
    + [f"loose-{i:02d}.txt" for i in range(30)]
    + ["odd/a b.txt", "odd/a+b.txt", "odd/é.txt", "odd/x%y.txt"]
)  # fmt: skip


@pytest.fixture(scope="module")
def listed(s3: S3Daemon, alice: Key) -> str:
    """A bucket holding :data:`KEYS` (each key's bytes are its name)."""
    client = s3.client(alice)
    name = fresh("listing")
    client.create_bucket(Bucket=name)

    def put(key: str) -> None:
        s3.client(alice).put_object(Bucket=name, Key=key, Body=key.encode())

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(put, KEYS))
    return name


def test_list_v2_pages_through_every_key_in_order(client: Any, listed: str) -> None:
    """ListObjectsV2 gives every key once, in order, max-keys at a time
    with continuation tokens, sizes and entity tags; start-after starts
    after a key; fetch-owner names the owner."""
    pages = client.get_paginator("list_objects_v2").paginate(
        Bucket=listed, PaginationConfig={"PageSize": 100}
    )
    seen, counts = [], []
    for page in pages:
        counts.append(page["KeyCount"])
        seen += [(o["Key"], o["Size"]) for o in page.get("Contents", [])]
    assert seen == [(key, len(key.encode())) for key in KEYS]
    assert counts == [100, 100, len(KEYS) - 200]
    after = client.list_objects_v2(Bucket=listed, StartAfter=KEYS[9], MaxKeys=5)
    assert [o["Key"] for o in after["Contents"]] == KEYS[10:15]
    assert after["IsTruncated"] and after["NextContinuationToken"]
    owned = client.list_objects_v2(Bucket=listed, MaxKeys=1, FetchOwner=True)
    assert owned["Contents"][0]["Owner"]["DisplayName"] == "alice"
    assert (
        "Owner" not in client.list_objects_v2(Bucket=listed, MaxKeys=1)["Contents"][0]
    )


def test_list_v2_rolls_keys_up_by_delimiter_under_a_prefix(
    client: Any, listed: str
) -> None:
    """With a delimiter, keys below the next one after the prefix are given
    as common prefixes, once each, also across pages; keys that need URL
    encoding come back as they were put."""
    top = client.list_objects_v2(Bucket=listed, Delimiter="/")
    assert [p["Prefix"] for p in top["CommonPrefixes"]] == ["odd/", "photos/"]
    assert [o["Key"] for o in top["Contents"]] == [
        k for k in KEYS if k.startswith("loose-")
    ]
    years = client.list_objects_v2(Bucket=listed, Prefix="photos/", Delimiter="/")
    assert [p["Prefix"] for p in years["CommonPrefixes"]] == [
        "photos/2024/",
        "photos/2025/",
    ]
    assert "Contents" not in years
    pages = client.get_paginator("list_objects_v2").paginate(
        Bucket=listed,
        Prefix="photos/2025/",
        Delimiter="/",
        PaginationConfig={"PageSize": 2},
    )
    months = [p["Prefix"] for page in pages for p in page.get("CommonPrefixes", [])]
    assert months == ["photos/2025/01/", "photos/2025/02/", "photos/2025/03/"]
    odd = client.list_objects_v2(Bucket=listed, Prefix="odd/")
    assert [o["Key"] for o in odd["Contents"]] == [
        "odd/a b.txt",
        "odd/a+b.txt",
        "odd/x%y.txt",
        "odd/é.txt",
    ]
    assert client.get_object(Bucket=listed, Key="odd/a+b.txt")["Body"].read() == (
        b"odd/a+b.txt"
    )


def test_list_v1_pages_by_marker(client: Any, listed: str) -> None:
    """ListObjects (version 1) pages with markers, and rolls up by delimiter."""
    pages = client.get_paginator("list_objects").paginate(
        Bucket=listed, PaginationConfig={"PageSize": 150}
    )
    keys = [o["Key"] for page in pages for o in page.get("Contents", [])]
    assert keys == KEYS
    first = client.list_objects(Bucket=listed, MaxKeys=3, Prefix="loose-")
    assert first["IsTruncated"]
    assert first["NextMarker"] == "loose-02.txt"
    after = client.list_objects(Bucket=listed, Marker="loose-27.txt", Prefix="loose-")
    assert [o["Key"] for o in after["Contents"]] == ["loose-28.txt", "loose-29.txt"]
    rolled = client.list_objects(Bucket=listed, Delimiter="/", Prefix="photos/2024/")
    assert [p["Prefix"] for p in rolled["CommonPrefixes"]] == [
        "photos/2024/01/",
        "photos/2024/02/",
        "photos/2024/03/",
    ]


def preflight(s3: S3Daemon, path: str, origin: str, method: str) -> Any:
    request = urllib.request.Request(
        s3.endpoint + path,
        method="OPTIONS",
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": method,
            "Access-Control-Request-Headers": "content-type, x-amz-date, authorization",
        },
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.headers
    except urllib.error.HTTPError as error:
        return error.code, error.headers


def test_a_buckets_cors_rules_answer_browsers(client: Any, s3: S3Daemon) -> None:
    """PutBucketCors stores rules GetBucketCors gives back; a preflight from
    an origin they allow is answered with the methods and headers asked,
    one they do not is 403; a request from an allowed origin may read the
    S3 headers (ETag); DeleteBucketCors removes them."""
    name = fresh("cors")
    client.create_bucket(Bucket=name)
    rules = {
        "CORSRules": [
            {
                "AllowedOrigins": ["https://app.example.com"],
                "AllowedMethods": ["GET", "PUT", "POST"],
                "AllowedHeaders": ["*"],
                "ExposeHeaders": ["ETag", "x-amz-request-id"],
                "MaxAgeSeconds": 600,
            }
        ]
    }
    client.put_bucket_cors(Bucket=name, CORSConfiguration=rules)
    got = client.get_bucket_cors(Bucket=name)["CORSRules"]
    assert got == rules["CORSRules"]
    status, headers = preflight(s3, f"/{name}/up.bin", "https://app.example.com", "PUT")
    assert status == 200
    assert headers["Access-Control-Allow-Origin"] == "https://app.example.com"
    assert "PUT" in headers["Access-Control-Allow-Methods"]
    assert "x-amz-date" in headers["Access-Control-Allow-Headers"]
    assert headers["Access-Control-Max-Age"] == "600"
    status, _ = preflight(s3, f"/{name}/up.bin", "https://evil.example", "PUT")
    assert status == 403
    status, _ = preflight(s3, f"/{name}/up.bin", "https://app.example.com", "DELETE")
    assert status == 403
    client.put_object(Bucket=name, Key="up.bin", Body=b"cors")
    url = client.generate_presigned_url(
        "get_object", Params={"Bucket": name, "Key": "up.bin"}
    )
    request = urllib.request.Request(url, headers={"Origin": "https://app.example.com"})
    with urllib.request.urlopen(request, timeout=30) as response:
        assert response.headers["Access-Control-Allow-Origin"] == (
            "https://app.example.com"
        )
        assert "ETag" in response.headers["Access-Control-Expose-Headers"]
    client.delete_bucket_cors(Bucket=name)
    error = refused(client.get_bucket_cors, Bucket=name)
    assert error_code(error) == "NoSuchCORSConfiguration"
    status, _ = preflight(s3, f"/{name}/up.bin", "https://app.example.com", "PUT")
    assert status == 403


def test_configured_origins_reach_every_bucket(client: Any, s3: S3Daemon) -> None:
    """[s3] cors_origins lets an origin preflight any bucket, with S3's
    headers exposed to it."""
    name = fresh("anything")
    client.create_bucket(Bucket=name)
    status, headers = preflight(s3, f"/{name}/k", CONFIGURED, "PUT")
    assert status == 200
    assert headers["Access-Control-Allow-Origin"] == CONFIGURED
    assert "ETag" in headers["Access-Control-Expose-Headers"]
    status, _ = preflight(s3, f"/{name}/k", "https://other.example.com", "PUT")
    assert status == 403
