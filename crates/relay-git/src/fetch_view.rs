//! A throw-away repository for one fetch, borrowing the mirror's objects.
//!
//! `git fetch` does three things in proportion to the refs of the repository it runs in: it
//! parses every local ref's commit to see what is already complete, offers them as `have`s
//! in negotiation, and checks connectivity of what arrived against all of them
//! (`rev-list --not --all`). With thousands of branches that is most of a one-commit fetch
//! (measured in `benches/mirror.rs`). The view holds only the ref being updated and a few
//! anchors the new commits most likely build on (the default branch, a pull request's
//! target), and reaches the mirror's objects through `objects/info/alternates`; the
//! alternate's own refs are hidden from it. What the fetch brought (one pack) then moves into
//! the mirror by rename, and the mirror's ref is set with git2. One job at a time uses a
//! mirror (the runner's lane), so one view per mirror is enough.

use std::path::{Path, PathBuf};

use git2::{Oid, Repository};

use crate::GitError;

const VIEW_DIR: &str = "relay-fetch";

/// Kept between fetches: creating files and directories is what costs here (about 1 ms each
/// on the disks measured), so a fetch only rewrites `packed-refs` and removes the one loose
/// ref it wrote.
pub(crate) struct FetchView {
    path: PathBuf,
}

impl FetchView {
    /// The mirror's view, created on first use, holding `refs` (name, commit) and no others.
    pub(crate) fn prepare(mirror_path: &Path, refs: &[(String, Oid)]) -> Result<Self, GitError> {
        let path = mirror_path.join(VIEW_DIR);
        let storage = |at: &Path, e: std::io::Error| GitError::Storage {
            path: at.display().to_string(),
            message: e.to_string(),
        };
        let objects = mirror_path.join("objects");
        let objects = std::fs::canonicalize(&objects).unwrap_or(objects);
        let alternates = path.join("objects/info/alternates");
        let wanted = format!("{}\n", objects.display());
        if std::fs::read_to_string(&alternates).ok().as_deref() != Some(wanted.as_str()) {
            for dir in ["objects/info", "objects/pack", "refs"] {
                std::fs::create_dir_all(path.join(dir)).map_err(|e| storage(&path, e))?;
            }
            // Bare, and HEAD on no branch a fetch could update ("refusing to fetch into
            // branch checked out" otherwise).
            for (name, text) in [
                ("HEAD", "ref: refs/relay/view\n"),
                (
                    "config",
                    "[core]\n\trepositoryformatversion = 0\n\tbare = true\n",
                ),
                ("objects/info/alternates", wanted.as_str()),
            ] {
                std::fs::write(path.join(name), text).map_err(|e| storage(&path.join(name), e))?;
            }
        }
        let mut packed: Vec<String> = refs
            .iter()
            .map(|(name, oid)| format!("{oid} {name}\n"))
            .collect();
        packed.sort_by(|a, b| a[41..].cmp(&b[41..]));
        packed.dedup_by(|a, b| a[41..] == b[41..]);
        let packed_refs = path.join("packed-refs");
        std::fs::write(
            &packed_refs,
            format!("# pack-refs with: peeled sorted \n{}", packed.concat()),
        )
        .map_err(|e| storage(&packed_refs, e))?;
        let view = Self { path };
        // A loose ref left by an interrupted fetch would shadow the value just written.
        for (name, _) in refs {
            view.remove_loose_ref(name);
        }
        Ok(view)
    }

    fn remove_loose_ref(&self, name: &str) {
        if name.starts_with("refs/") && !name.contains("..") {
            let _ = std::fs::remove_file(self.path.join(name));
        }
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Moves the objects the fetch wrote into the mirror's object store (packs: data first,
    /// index last, so the mirror never sees an index without its pack) and returns where
    /// `reference` points in the view now.
    pub(crate) fn adopt_into(
        &self,
        mirror_path: &Path,
        reference: &str,
    ) -> Result<Option<Oid>, GitError> {
        let target = mirror_path.join("objects");
        let from = self.path.join("objects");
        let storage = |path: &Path, e: std::io::Error| GitError::Storage {
            path: path.display().to_string(),
            message: e.to_string(),
        };
        let pack_dir = from.join("pack");
        let mut files: Vec<PathBuf> = std::fs::read_dir(&pack_dir)
            .map_err(|e| storage(&pack_dir, e))?
            .filter_map(|entry| entry.ok().map(|e| e.path()))
            .filter(|p| {
                p.extension()
                    .is_some_and(|e| e == "pack" || e == "rev" || e == "idx")
            })
            .collect();
        // `.idx` sorts after `.pack`/`.rev` only by this key, not by name.
        files.sort_by_key(|p| p.extension().is_some_and(|e| e == "idx"));
        for file in files {
            if let Some(name) = file.file_name() {
                let dest = target.join("pack").join(name);
                std::fs::rename(&file, &dest).map_err(|e| storage(&dest, e))?;
            }
        }
        // Loose objects, should git have written any.
        for entry in std::fs::read_dir(&from)
            .map_err(|e| storage(&from, e))?
            .flatten()
        {
            let name = entry.file_name();
            let fanout = name.to_string_lossy();
            if fanout.len() != 2 || !fanout.chars().all(|c| c.is_ascii_hexdigit()) {
                continue;
            }
            let dest_dir = target.join(&name);
            std::fs::create_dir_all(&dest_dir).map_err(|e| storage(&dest_dir, e))?;
            for object in std::fs::read_dir(entry.path())
                .map_err(|e| storage(&entry.path(), e))?
                .flatten()
            {
                let dest = dest_dir.join(object.file_name());
                if !dest.exists() {
                    std::fs::rename(object.path(), &dest).map_err(|e| storage(&dest, e))?;
                }
            }
        }
        let fetched = Repository::open_bare(&self.path)?
            .refname_to_id(reference)
            .ok();
        self.remove_loose_ref(reference);
        Ok(fetched)
    }
}
