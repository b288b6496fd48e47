//! A small repository kept beside the mirror for fetching, borrowing the mirror's objects.
//!
//! `git fetch` does three things in proportion to the refs of the repository it runs in: it
//! parses every local ref's commit to see what is already complete, offers them as `have`s
//! in negotiation, and checks connectivity of what arrived against all of them
//! (`rev-list --not --all`). With thousands of branches that is most of a one-commit fetch
//! (measured in `benches/mirror.rs`). The view holds only the ref being updated and a few
//! anchors the new commits most likely build on (the default branch, a pull request's
//! target), and reaches the mirror's objects through `objects/info/alternates`; the
//! alternate's own refs are hidden from it. What the fetch wrote (a pack, or loose objects
//! for small fetches) then moves into the mirror by rename, and the mirror's ref is set with
//! git2.
//!
//! An exclusive file lock guards the view from preparation to adoption: a job that timed out
//! may still be running its git child when the next job of the same mirror starts, and two
//! relays may share a data directory.

use std::fs::File;
use std::path::{Path, PathBuf};

use git2::{Oid, Repository};

use crate::GitError;

const VIEW_DIR: &str = "relay-fetch";
const LOCK_FILE: &str = "relay-fetch.lock";

/// Kept between fetches: creating files and directories is what costs here (about 1 ms each
/// on the disks measured), so a fetch only rewrites `packed-refs` and clears the loose refs
/// the previous fetch left.
pub(crate) struct FetchView {
    path: PathBuf,
    /// Held (locked) for as long as the view is in use; released on drop.
    _lock: File,
}

fn storage(at: &Path, e: std::io::Error) -> GitError {
    GitError::Storage {
        path: at.display().to_string(),
        message: e.to_string(),
    }
}

impl FetchView {
    /// Locks the mirror's view (created on first use) and makes it hold exactly `refs`
    /// (name, commit).
    pub(crate) fn prepare(mirror_path: &Path, refs: &[(String, Oid)]) -> Result<Self, GitError> {
        let lock_path = mirror_path.join(LOCK_FILE);
        let lock = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| storage(&lock_path, e))?;
        lock.lock().map_err(|e| storage(&lock_path, e))?;

        let path = mirror_path.join(VIEW_DIR);
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
        // Whatever an interrupted fetch left behind: loose refs would shadow the refs
        // written below (or block a ref whose name extends theirs), half-written packs would
        // only take space.
        remove_files_under(&path.join("refs"));
        remove_files_under(&path.join("objects/pack"));

        let mut packed: Vec<String> = refs
            .iter()
            .map(|(name, oid)| format!("{oid} {name}\n"))
            .collect();
        packed.sort_by(|a, b| a[41..].cmp(&b[41..]));
        packed.dedup_by(|a, b| a[41..] == b[41..]);
        let packed_refs = path.join("packed-refs");
        // Rewritten in place: nothing else reads the view while the lock is held.
        std::fs::write(
            &packed_refs,
            format!("# pack-refs with: peeled sorted \n{}", packed.concat()),
        )
        .map_err(|e| storage(&packed_refs, e))?;
        Ok(Self { path, _lock: lock })
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
        // git writes a fetched ref as a loose file; reading it is much cheaper than opening
        // the view with git2 (which loads the borrowed object store).
        let loose = std::fs::read_to_string(self.path.join(reference))
            .ok()
            .and_then(|text| Oid::from_str(text.trim()).ok());
        let fetched = match loose {
            Some(oid) => Some(oid),
            None => Repository::open_bare(&self.path)?
                .refname_to_id(reference)
                .ok(),
        };
        let target = mirror_path.join("objects");
        let from = self.path.join("objects");
        let pack_dir = from.join("pack");
        let mut files: Vec<PathBuf> = std::fs::read_dir(&pack_dir)
            .map_err(|e| storage(&pack_dir, e))?
            .filter_map(|entry| entry.ok().map(|e| e.path()))
            .filter(|p| {
                let finished = p
                    .file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with("pack-"));
                finished
                    && p.extension()
                        .is_some_and(|e| e == "pack" || e == "rev" || e == "idx")
            })
            .collect();
        // `.idx` after `.pack`/`.rev`: false sorts first.
        files.sort_by_key(|p| p.extension().is_some_and(|e| e == "idx"));
        let moved_packs = !files.is_empty();
        for file in files {
            if let Some(name) = file.file_name() {
                let dest = target.join("pack").join(name);
                std::fs::rename(&file, &dest).map_err(|e| storage(&dest, e))?;
            }
        }
        if moved_packs {
            // git fsyncs the pack's data; the renames are ours to make durable before a ref
            // points into them.
            let dir = target.join("pack");
            File::open(&dir)
                .and_then(|d| d.sync_all())
                .map_err(|e| storage(&dir, e))?;
        }
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
            let objects = std::fs::read_dir(entry.path()).map_err(|e| storage(&entry.path(), e))?;
            for object in objects.flatten() {
                let file_name = object.file_name();
                let is_object = file_name.len() == 38
                    && file_name
                        .to_string_lossy()
                        .chars()
                        .all(|c| c.is_ascii_hexdigit());
                let dest = dest_dir.join(&file_name);
                if is_object && !dest.exists() {
                    std::fs::create_dir_all(&dest_dir).map_err(|e| storage(&dest_dir, e))?;
                    std::fs::rename(object.path(), &dest).map_err(|e| storage(&dest, e))?;
                } else {
                    // Already in the mirror, or a temporary file of a killed git.
                    let _ = std::fs::remove_file(object.path());
                }
            }
        }
        Ok(fetched)
    }
}

/// Removes every file below `dir`, keeping the directories (recreating them costs more than
/// leaving them). Used on the view only, whose refs and packs are all transient.
fn remove_files_under(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        match entry.file_type() {
            Ok(kind) if kind.is_dir() => remove_files_under(&entry.path()),
            Ok(_) => {
                let _ = std::fs::remove_file(entry.path());
            }
            Err(_) => {}
        }
    }
}
