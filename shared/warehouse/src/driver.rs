//! Where the ODBC driver library of a connection string is.
//!
//! The driver manager is built into Pricecast, so it finds a driver registered in
//! `odbcinst.ini` by its absolute path, or by a bare file name only on the loader's search path.
//! Distributions register their packaged drivers by bare file name and keep them in a directory
//! of their own (Debian's `odbc-postgresql`: `Driver=psqlodbcw.so` in
//! `/usr/lib/x86_64-linux-gnu/odbc/`), which their own driver manager searches. So before
//! connecting, a driver named in the connection string (`Driver={PostgreSQL Unicode}`) whose
//! registration is a bare file name is looked for in those directories, and the connection
//! string names the file found by its path instead. Drivers registered by path (the Databricks
//! driver's installer does so) and drivers named by path are left as they are.

use std::path::{Path, PathBuf};

use ini::Ini;

/// Directories of packaged ODBC drivers, `{triplet}` being the multiarch triplet.
const DRIVER_DIRS: [&str; 6] = [
    "/usr/lib/{triplet}/odbc",
    "/usr/lib/{triplet}",
    "/usr/lib64/odbc",
    "/usr/lib/odbc",
    "/usr/local/lib",
    "/usr/lib",
];

/// The connection string with a registered driver's bare file name resolved to its path, when
/// the driver's registration names a bare file that one of [`DRIVER_DIRS`] holds; otherwise
/// the string unchanged.
pub fn with_driver_path(connection_string: &str) -> String {
    let Some(value) = super::config::attribute(connection_string, "driver") else {
        return connection_string.to_owned();
    };
    let name = value.trim().trim_start_matches('{').trim_end_matches('}');
    if name.contains('/') {
        return connection_string.to_owned();
    }
    let Some(file) = registered_library(name) else {
        return connection_string.to_owned();
    };
    if file.contains('/') {
        return connection_string.to_owned();
    }
    match find_library(&file, &driver_dirs()) {
        Some(path) => {
            tracing::debug!(driver = name, library = %path.display(), "driver registered by file name found");
            connection_string.replacen(&value, &format!("{{{}}}", path.display()), 1)
        }
        None => connection_string.to_owned(),
    }
}

/// Where the driver manager reads driver registrations: `$ODBCSYSINI/$ODBCINSTINI`, as
/// unixODBC does, else `/etc/odbcinst.ini`.
fn odbcinst_ini() -> PathBuf {
    let dir = std::env::var_os("ODBCSYSINI").unwrap_or_else(|| "/etc".into());
    let file = std::env::var_os("ODBCINSTINI").unwrap_or_else(|| "odbcinst.ini".into());
    Path::new(&dir).join(file)
}

/// The `Driver` file of a registered driver, as written in `odbcinst.ini`.
fn registered_library(name: &str) -> Option<String> {
    let ini = Ini::load_from_file(odbcinst_ini()).ok()?;
    registered_library_in(&ini, name)
}

fn registered_library_in(ini: &Ini, name: &str) -> Option<String> {
    let section = ini.section(Some(name))?;
    section
        .iter()
        .find(|(key, _)| key.eq_ignore_ascii_case("driver"))
        .map(|(_, file)| file.trim().to_owned())
        .filter(|file| !file.is_empty())
}

fn driver_dirs() -> Vec<PathBuf> {
    let triplet = format!("{}-linux-gnu", std::env::consts::ARCH);
    DRIVER_DIRS
        .iter()
        .map(|dir| PathBuf::from(dir.replace("{triplet}", &triplet)))
        .collect()
}

fn find_library(file: &str, dirs: &[PathBuf]) -> Option<PathBuf> {
    dirs.iter()
        .map(|dir| dir.join(file))
        .find(|path| path.is_file())
}

#[cfg(test)]
mod tests {
    use super::*;

    const REGISTRATIONS: &str = "[PostgreSQL Unicode]\nDescription=PostgreSQL ODBC driver\nDriver=psqlodbcw.so\nSetup=libodbcpsqlS.so\n\n[Simba Spark ODBC Driver]\nDriver = /opt/simba/spark/lib/64/libsparkodbc_sb64.so\n";

    #[test]
    fn a_registration_gives_its_driver_file() {
        let ini = Ini::load_from_str(REGISTRATIONS).expect("ini");
        assert_eq!(
            registered_library_in(&ini, "PostgreSQL Unicode").as_deref(),
            Some("psqlodbcw.so")
        );
        assert_eq!(
            registered_library_in(&ini, "Simba Spark ODBC Driver").as_deref(),
            Some("/opt/simba/spark/lib/64/libsparkodbc_sb64.so")
        );
        assert_eq!(registered_library_in(&ini, "MySQL"), None);
    }

    #[test]
    fn a_bare_file_is_found_in_the_first_directory_holding_it() {
        let root = tempfile::tempdir().expect("tempdir");
        let (first, second) = (root.path().join("a"), root.path().join("b"));
        std::fs::create_dir_all(&first).expect("mkdir");
        std::fs::create_dir_all(&second).expect("mkdir");
        std::fs::write(second.join("psqlodbcw.so"), b"").expect("write");
        let dirs = [first.clone(), second.clone()];
        assert_eq!(
            find_library("psqlodbcw.so", &dirs),
            Some(second.join("psqlodbcw.so"))
        );
        assert_eq!(find_library("psqlodbca.so", &dirs), None);
    }

    #[test]
    fn a_driver_named_by_path_is_left_alone() {
        let s = "Driver={/opt/x/libdriver.so};Server=h;Pwd=secret";
        assert_eq!(with_driver_path(s), s);
        let s = "Server=h;Pwd=secret";
        assert_eq!(with_driver_path(s), s);
    }
}
