//! The S3 test server and the helpers of `tests/common/s3.rs` (not the code under test): the
//! server `scripts/test` starts is reachable with the exported credentials, each test gets its
//! own prefix, and the boto3 helpers put, get, list and delete objects. Skipped without a server
//! unless `PMF_REQUIRE_S3=1`.

mod common;

use common::s3::{s3_or_skip, S3Test};

#[test]
fn s3_server_put_get_list_delete() {
    let Some(s3) = s3_or_skip("s3_server_put_get_list_delete") else { return };
    assert!(s3.server.endpoint.starts_with("http://127.0.0.1:"), "{:?}", s3.server);

    let etag = s3.put("a/one", b"hello\n");
    // The MD5 of "hello\n", quoted.
    assert_eq!(etag, "\"b1946ac92492d2347c6235b4d2611184\"");
    s3.put("a/two", b"");
    s3.put("b", b"x");

    assert_eq!(s3.get("a/one").as_deref(), Some(&b"hello\n"[..]));
    assert_eq!(s3.get("a/missing"), None);
    let listed = s3.list("a");
    assert_eq!(
        listed,
        vec![
            ("a/one".to_owned(), 6, "\"b1946ac92492d2347c6235b4d2611184\"".to_owned()),
            ("a/two".to_owned(), 0, "\"d41d8cd98f00b204e9800998ecf8427e\"".to_owned()),
        ]
    );
    assert_eq!(s3.list("").len(), 3);

    s3.delete("a/one");
    s3.delete("a/one"); // a missing key: no error
    assert_eq!(s3.get("a/one"), None);
    assert_eq!(s3.url("m"), format!("s3://{}/{}/m", s3.server.bucket, s3.prefix));
}

#[test]
fn s3_server_prefixes_are_unique_and_separate() {
    let Some(a) = s3_or_skip("s3_server_prefixes") else { return };
    let b = S3Test::new(a.server.clone(), "s3_server_prefixes");
    assert_ne!(a.prefix, b.prefix);
    a.put("k", b"a");
    assert_eq!(b.get("k"), None);
    assert!(b.list("").is_empty());
    let child = a.child("writer-1");
    assert_eq!(child.key("k"), format!("{}/writer-1/k", a.prefix));
}

#[test]
fn s3_server_folder_round_trip() {
    let Some(s3) = s3_or_skip("s3_server_folder_round_trip") else { return };
    let src = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(src.path().join("data/checkpoints")).unwrap();
    std::fs::write(src.path().join("metadata.yaml"), "format:\n  version: 1.0.0\n").unwrap();
    std::fs::write(src.path().join("data/checkpoints/w.h5"), b"weights").unwrap();
    s3.upload_dir(src.path(), "model");
    let keys: Vec<String> = s3.list("model").into_iter().map(|(k, _, _)| k).collect();
    assert_eq!(keys, ["model/data/checkpoints/w.h5", "model/metadata.yaml"]);
    let dst = tempfile::tempdir().unwrap();
    s3.download_dir("model", dst.path());
    assert_eq!(std::fs::read(dst.path().join("data/checkpoints/w.h5")).unwrap(), b"weights");
}
