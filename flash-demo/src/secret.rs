//! The demo's own signing secret, for when `FLASH_SECRET` is not set: random, made at the first
//! start, kept in a file only its owner can read, and reused at every later start, so cookies
//! signed before a restart still verify and nobody else knows the key.

use std::fs;
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};

use flash::storage::MIN_KEY_LEN;

/// The secret file's name, beside the SQLite database file (or in the working directory).
pub const FILE_NAME: &str = "flash-demo.secret";

/// Environment variable: where to keep the secret instead.
pub const ENV_SECRET_FILE: &str = "FLASH_SECRET_FILE";

/// Where the secret for `storage_url` is kept: beside the database file when the storage is an
/// SQLite file (`sqlite://dir/flash.db`, `cookie+sqlite:…`), else in the working directory.
///
/// ```
/// use std::path::Path;
/// use flash_demo::secret::path_for;
/// assert_eq!(path_for("cookie+sqlite://data/flash.db"), Path::new("data/flash-demo.secret"));
/// assert_eq!(path_for("sqlite:///var/lib/demo/f.db?mode=rwc"), Path::new("/var/lib/demo/flash-demo.secret"));
/// assert_eq!(path_for("redis://127.0.0.1"), Path::new("flash-demo.secret"));
/// assert_eq!(path_for("sqlite::memory:"), Path::new("flash-demo.secret"));
/// ```
pub fn path_for(storage_url: &str) -> PathBuf {
    let url = storage_url.trim();
    let url = url.strip_prefix("cookie+").unwrap_or(url);
    let database = url
        .get(..7)
        .filter(|scheme| scheme.eq_ignore_ascii_case("sqlite:"))
        .map(|_| &url[7..])
        .map(|rest| rest.strip_prefix("//").unwrap_or(rest))
        .map(|rest| rest.split('?').next().unwrap_or(rest))
        .filter(|file| !file.is_empty() && !file.starts_with(":memory:"));
    match database.and_then(|file| Path::new(file).parent()) {
        Some(dir) => dir.join(FILE_NAME),
        None => PathBuf::from(FILE_NAME),
    }
}

/// Whether [`load_or_create`] made the secret or found it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// Made now and written to the file.
    Created,
    /// Read from the file an earlier start wrote.
    Found,
}

/// The secret kept at `path`, made (32 random bytes, hex) and written with mode `0600` when the
/// file does not exist yet. Two starts racing both end with the same secret: the file appears
/// whole or not at all (written aside, then linked into place).
///
/// # Errors
/// When the file cannot be read or written, or holds fewer than
/// [`MIN_KEY_LEN`] bytes.
pub fn load_or_create(path: &Path) -> io::Result<(String, Origin)> {
    match read(path) {
        Ok(secret) => return Ok((secret, Origin::Found)),
        Err(err) if err.kind() == io::ErrorKind::NotFound => {}
        Err(err) => return Err(err),
    }
    let secret = random_secret()?;
    // A name of its own (random), so racing starts never write or remove each other's.
    let aside = path.with_file_name(format!(
        ".{}.{}.tmp",
        path.file_name()
            .map_or_else(|| FILE_NAME.into(), |n| n.to_string_lossy()),
        &random_secret()?[..16]
    ));
    write_private(&aside, &secret)?;
    let linked = fs::hard_link(&aside, path);
    // Best effort: the link (or its failure) is what counts.
    let _ = fs::remove_file(&aside);
    match linked {
        Ok(()) => Ok((secret, Origin::Created)),
        // Another start made it first: use theirs.
        Err(err) if err.kind() == io::ErrorKind::AlreadyExists => {
            read(path).map(|secret| (secret, Origin::Found))
        }
        Err(err) => Err(err),
    }
}

/// The secret in `path`, refused unless only this user can read it: not a symbolic link (it
/// could lead to anyone's file), owned by the user the demo runs as, and no permission for the
/// group or others. Anyone who can read the secret can forge cookies the demo trusts.
fn read(path: &Path) -> io::Result<String> {
    let text = read_private(path)?;
    let secret = text.trim().to_owned();
    if secret.len() < MIN_KEY_LEN {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "{} holds {} bytes, fewer than the {MIN_KEY_LEN} a secret needs; delete it to \
                 have a new one made",
                path.display(),
                secret.len()
            ),
        ));
    }
    Ok(secret)
}

#[cfg(unix)]
fn read_private(path: &Path) -> io::Result<String> {
    use std::io::Read as _;
    use std::os::unix::fs::MetadataExt as _;

    use rustix::fs::{Mode, OFlags};

    let unsafe_file = |why: String| {
        io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!(
                "{} {why}: anyone who can read it can sign cookies the demo trusts. Refused; \
                 fix: {}",
                path.display(),
                fix(path, &why)
            ),
        )
    };
    // Opened without following a symbolic link, then checked through the open file: what is
    // checked is what is read.
    let fd = match rustix::fs::open(
        path,
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    ) {
        Ok(fd) => fd,
        Err(rustix::io::Errno::LOOP) => {
            return Err(unsafe_file("is a symbolic link".to_owned()));
        }
        Err(err) => return Err(err.into()),
    };
    let mut file = fs::File::from(fd);
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(unsafe_file("is not a regular file".to_owned()));
    }
    let me = rustix::process::geteuid().as_raw();
    if meta.uid() != me {
        return Err(unsafe_file(format!(
            "is owned by user {} (the demo runs as user {me})",
            meta.uid()
        )));
    }
    let mode = meta.mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(unsafe_file(format!(
            "has mode {mode:o}: the group or other users may read or change it"
        )));
    }
    let mut text = String::new();
    file.read_to_string(&mut text)?;
    Ok(text)
}

#[cfg(not(unix))]
fn read_private(path: &Path) -> io::Result<String> {
    fs::read_to_string(path)
}

/// How to make the file at `path` safe again, for the refusal's message.
#[cfg(unix)]
fn fix(path: &Path, why: &str) -> String {
    let shown = path.display();
    if why.starts_with("has mode") {
        format!("`chmod 600 {shown}`")
    } else {
        format!(
            "delete {shown} (the demo makes a new private one at its next start), or point \
             {ENV_SECRET_FILE} at a file of your own with mode 600, or set FLASH_SECRET"
        )
    }
}

fn random_secret() -> io::Result<String> {
    flash::storage::Key::random_secret().map_err(io::Error::other)
}

fn write_private(path: &Path, secret: &str) -> io::Result<()> {
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(secret.as_bytes())?;
    file.write_all(b"\n")?;
    file.sync_all()
}
