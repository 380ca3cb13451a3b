//! Snapshots of a directory tree (names and bytes, recursively) and their differences.

use std::collections::BTreeMap;
use std::path::Path;

/// One entry of a directory tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Node {
    /// A directory.
    Dir,
    /// A regular file and its bytes.
    File(Vec<u8>),
    /// A symbolic link and its target.
    Symlink(String),
    /// Anything else (fifo, socket, device).
    Other,
}

/// A directory tree: relative path (with `/`) -> node. The root itself is not listed.
pub type Tree = BTreeMap<String, Node>;

/// Read the tree below `root`.
pub fn snapshot(root: &Path) -> std::io::Result<Tree> {
    let mut tree = Tree::new();
    walk(root, "", &mut tree)?;
    Ok(tree)
}

fn walk(dir: &Path, prefix: &str, tree: &mut Tree) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let rel = if prefix.is_empty() {
            name
        } else {
            format!("{prefix}/{name}")
        };
        let ft = entry.file_type()?;
        if ft.is_dir() {
            tree.insert(rel.clone(), Node::Dir);
            walk(&entry.path(), &rel, tree)?;
        } else if ft.is_file() {
            tree.insert(rel, Node::File(std::fs::read(entry.path())?));
        } else if ft.is_symlink() {
            tree.insert(
                rel,
                Node::Symlink(
                    std::fs::read_link(entry.path())?
                        .to_string_lossy()
                        .into_owned(),
                ),
            );
        } else {
            tree.insert(rel, Node::Other);
        }
    }
    Ok(())
}

fn describe(n: &Node) -> String {
    match n {
        Node::Dir => "directory".into(),
        Node::File(b) => format!("file of {} bytes", b.len()),
        Node::Symlink(t) => format!("symlink to {t}"),
        Node::Other => "special file".into(),
    }
}

/// The differences between an expected and an actual tree, one line each (empty: equal).
pub fn diff(
    expected: &Tree,
    actual: &Tree,
    expected_label: &str,
    actual_label: &str,
) -> Vec<String> {
    let mut out = Vec::new();
    for (path, e) in expected {
        match actual.get(path) {
            None => out.push(format!(
                "{path}: missing (in {expected_label}: {})",
                describe(e)
            )),
            Some(a) if a == e => {}
            Some(Node::File(a)) => {
                if let Node::File(e) = e {
                    let at = e
                        .iter()
                        .zip(a.iter())
                        .position(|(x, y)| x != y)
                        .unwrap_or(e.len().min(a.len()));
                    out.push(format!(
                        "{path}: contents differ at byte {at} ({expected_label}: {} bytes, {actual_label}: {} bytes); {}",
                        e.len(),
                        a.len(),
                        crate::diff::first_line_diff(e, a, expected_label, actual_label).replace('\n', "\n    ")
                    ));
                } else {
                    out.push(format!(
                        "{path}: {expected_label} has a {}, {actual_label} a {}",
                        describe(e),
                        describe(&Node::File(a.clone()))
                    ));
                }
            }
            Some(a) => out.push(format!(
                "{path}: {expected_label} has a {}, {actual_label} a {}",
                describe(e),
                describe(a)
            )),
        }
    }
    for (path, a) in actual {
        if !expected.contains_key(path) {
            out.push(format!(
                "{path}: unexpected {} (not in {expected_label})",
                describe(a)
            ));
        }
    }
    out
}

/// Create the files and directories of a case below `root` (which is created).
pub fn populate(
    root: &Path,
    files: &BTreeMap<String, String>,
    dirs: &[String],
) -> std::io::Result<()> {
    std::fs::create_dir_all(root)?;
    for d in dirs {
        std::fs::create_dir_all(root.join(d))?;
    }
    for (rel, contents) in files {
        let p = root.join(rel);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(p, contents)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_and_diff() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        let files: BTreeMap<String, String> =
            [("x/y.txt".to_string(), "one\ntwo\n".to_string())].into();
        populate(a.path(), &files, &["empty".into()]).unwrap();
        populate(b.path(), &files, &["empty".into()]).unwrap();
        let ta = snapshot(a.path()).unwrap();
        assert_eq!(ta.len(), 3);
        assert!(diff(&ta, &snapshot(b.path()).unwrap(), "a", "b").is_empty());
        std::fs::write(b.path().join("x/y.txt"), "one\nTWO\n").unwrap();
        std::fs::write(b.path().join("new"), "").unwrap();
        std::fs::remove_dir(b.path().join("empty")).unwrap();
        let d = diff(&ta, &snapshot(b.path()).unwrap(), "a", "b");
        assert_eq!(d.len(), 3, "{d:?}");
        assert!(d[0].starts_with("empty: missing"), "{d:?}");
        assert!(d[1].contains("differ at byte 4"), "{d:?}");
        assert!(d[2].starts_with("new: unexpected"), "{d:?}");
    }
}
