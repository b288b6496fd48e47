//! The Bitbucket webhook bodies in the repository's `fixtures/` directory, and the one table
//! saying which `X-Event-Key` Bitbucket sends each of them with.
//!
//! Tests, `relay-bench` and (through the same directory) `scripts/fuzz.sh` all read the
//! fixtures here, so adding one means one file and one row. Nothing outside std: relay-core's
//! tests use this crate, and relay-core must stay free of I/O and heavy dependencies.

use std::io;
use std::path::{Path, PathBuf};

/// Which Bitbucket product sent a body; each has its own directory under `fixtures/`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Product {
    Cloud,
    Server,
}

impl Product {
    pub const ALL: [Product; 2] = [Product::Cloud, Product::Server];

    /// The directory under `fixtures/`.
    pub fn dir(self) -> &'static str {
        match self {
            Self::Cloud => "bitbucket-cloud",
            Self::Server => "bitbucket-server",
        }
    }
}

/// One row of [`TABLE`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    pub product: Product,
    /// File name inside the product's directory.
    pub file: &'static str,
    pub event_key: &'static str,
}

impl Entry {
    /// `bitbucket-cloud/push.json`: the path under `fixtures/`, used as the fixture's name.
    pub fn name(&self) -> String {
        format!("{}/{}", self.product.dir(), self.file)
    }
}

const fn cloud(file: &'static str, event_key: &'static str) -> Entry {
    Entry {
        product: Product::Cloud,
        file,
        event_key,
    }
}

const fn server(file: &'static str, event_key: &'static str) -> Entry {
    Entry {
        product: Product::Server,
        file,
        event_key,
    }
}

/// Every fixture with its event key, Cloud then Server, each sorted by file name (the order
/// a sorted directory listing gives). Cloud bodies do not name their event, so the key comes
/// from what the file captured; Server bodies carry it as `eventKey`, which this table must
/// repeat (checked by this crate's tests).
pub const TABLE: &[Entry] = &[
    cloud("pr_comment_created.json", "pullrequest:comment_created"),
    cloud("pr_comment_deleted.json", "pullrequest:comment_deleted"),
    cloud("pr_created.json", "pullrequest:created"),
    cloud("pr_declined.json", "pullrequest:rejected"),
    cloud("pr_fulfilled.json", "pullrequest:fulfilled"),
    cloud("pr_updated.json", "pullrequest:updated"),
    cloud("push.json", "repo:push"),
    cloud("push_branch_create.json", "repo:push"),
    cloud("push_branch_delete.json", "repo:push"),
    cloud("push_tag_create.json", "repo:push"),
    cloud("push_tag_delete.json", "repo:push"),
    server("pr_declined.json", "pr:declined"),
    server("pr_declined_iso_dates.json", "pr:declined"),
    server("pr_deleted.json", "pr:deleted"),
    server("pr_from_ref_updated.json", "pr:from_ref_updated"),
    server("pr_merged.json", "pr:merged"),
    server("pr_merged_iso_dates.json", "pr:merged"),
    server("pr_modified_meta.json", "pr:modified"),
    server("pr_modified_toref.json", "pr:modified"),
    server("pr_open.json", "pr:opened"),
    server("pr_open_iso_dates.json", "pr:opened"),
    server("push.json", "repo:refs_changed"),
    server("push_branch_create.json", "repo:refs_changed"),
    server("push_branch_delete.json", "repo:refs_changed"),
    server("push_tag_create.json", "repo:refs_changed"),
    server("push_tag_delete.json", "repo:refs_changed"),
    server("push_v5.json", "repo:refs_changed"),
];

/// One fixture body with the event key Bitbucket sends it with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fixture {
    pub product: Product,
    /// `bitbucket-cloud/push.json`
    pub name: String,
    pub event_key: &'static str,
    pub body: Vec<u8>,
}

/// The repository's `fixtures/` directory (found from this crate's own location, so it does
/// not depend on the working directory).
pub fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures")
}

/// The path of fixture `name` (`bitbucket-cloud/push.json`).
pub fn path(name: &str) -> PathBuf {
    dir().join(name)
}

/// The body of fixture `name` (`bitbucket-cloud/push.json`); the error names the path.
pub fn read(name: &str) -> io::Result<Vec<u8>> {
    let path = path(name);
    std::fs::read(&path).map_err(|err| with_path(&path, err))
}

/// Every fixture of [`TABLE`], in its order. Fails when a file is missing, and when a
/// product directory holds a `.json` file the table does not list, so no fixture is left
/// out of the tests that go through all of them.
pub fn load_all() -> io::Result<Vec<Fixture>> {
    for product in Product::ALL {
        if let Some(file) = unlisted(product)?.first() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "{}/{file} has no row in relay_fixtures::TABLE",
                    product.dir()
                ),
            ));
        }
    }
    TABLE
        .iter()
        .map(|entry| {
            let name = entry.name();
            Ok(Fixture {
                product: entry.product,
                body: read(&name)?,
                name,
                event_key: entry.event_key,
            })
        })
        .collect()
}

/// The `.json` files of `product`'s directory that [`TABLE`] does not list, sorted.
fn unlisted(product: Product) -> io::Result<Vec<String>> {
    let path = dir().join(product.dir());
    let mut out = Vec::new();
    for entry in std::fs::read_dir(&path).map_err(|err| with_path(&path, err))? {
        let file = entry.map_err(|err| with_path(&path, err))?.file_name();
        let file = file.to_string_lossy();
        let listed = TABLE.iter().any(|e| e.product == product && e.file == file);
        if file.ends_with(".json") && !listed {
            out.push(file.into_owned());
        }
    }
    out.sort();
    Ok(out)
}

fn with_path(path: &Path, err: io::Error) -> io::Error {
    io::Error::new(err.kind(), format!("{}: {err}", path.display()))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn the_table_lists_every_file_in_directory_order() {
        for product in Product::ALL {
            let mut on_disk: Vec<String> = std::fs::read_dir(dir().join(product.dir()))
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .filter(|f| f.ends_with(".json"))
                .collect();
            on_disk.sort();
            let listed: Vec<&str> = TABLE
                .iter()
                .filter(|e| e.product == product)
                .map(|e| e.file)
                .collect();
            assert_eq!(listed, on_disk, "{}", product.dir());
        }
        let products: Vec<Product> = TABLE.iter().map(|e| e.product).collect();
        assert!(
            products
                .windows(2)
                .all(|w| w[0] == w[1] || w[0] == Product::Cloud),
            "Cloud rows come first"
        );
    }

    #[test]
    fn server_rows_repeat_the_body_event_key() {
        for fixture in load_all().unwrap() {
            let body: serde_json::Value = serde_json::from_slice(&fixture.body).unwrap();
            match fixture.product {
                Product::Server => {
                    assert_eq!(body["eventKey"], fixture.event_key, "{}", fixture.name)
                }
                Product::Cloud => assert!(body.get("eventKey").is_none(), "{}", fixture.name),
            }
        }
    }

    #[test]
    fn a_missing_fixture_names_its_path() {
        let err = read("bitbucket-cloud/no-such.json").unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
        assert!(err.to_string().contains("no-such.json"), "{err}");
    }
}
