//! Random bytes from the operating system.

/// Fills `buf` from the OS generator.
///
/// The OS generator failing is not something a web request can recover from or work around
/// safely (a guessable id would leak one client's messages to another), so it aborts the request.
pub(crate) fn fill(buf: &mut [u8]) {
    if let Err(err) = getrandom::fill(buf) {
        panic!("the operating system's random generator failed: {err}");
    }
}

/// Fills `buf` from the OS generator, or says why it cannot.
pub(crate) fn try_fill(buf: &mut [u8]) -> crate::Result<()> {
    getrandom::fill(buf).map_err(|err| {
        crate::Error::new(
            crate::ErrorKind::Unavailable,
            format!("the operating system's random generator failed: {err}"),
        )
    })
}
