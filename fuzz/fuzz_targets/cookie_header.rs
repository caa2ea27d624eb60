//! The `Cookie` header parser on arbitrary bytes: never a panic; a cookie found is exactly
//! what a plain reading of the header says; and bytes put in another cookie never hide a
//! flash cookie.
//!
//! The input is split on its first `0` byte into a name and the header bytes; the header is
//! also split on `\n` into several `Cookie` header lines (HTTP/2 may send more than one).
#![no_main]

use flash_core::storage::Incoming;
use libfuzzer_sys::fuzz_target;

/// The value of `name` read the slow, obvious way: the first `name=` pair of any line.
fn reference<'a>(lines: &[&'a [u8]], name: &[u8]) -> Option<&'a [u8]> {
    for line in lines {
        for pair in line.split(|&b| b == b';') {
            let Some(at) = pair.iter().position(|&b| b == b'=') else {
                continue;
            };
            if pair[..at].trim_ascii() == name {
                let value = pair[at + 1..].trim_ascii();
                let unquoted = if value.len() >= 2 && value[0] == b'"' && value[value.len() - 1] == b'"' {
                    &value[1..value.len() - 1]
                } else {
                    value
                };
                return Some(unquoted);
            }
        }
    }
    None
}

fn is_header_value(line: &[u8]) -> bool {
    line.iter().all(|&b| (b >= 32 && b != 127) || b == b'\t')
}

fuzz_target!(|data: &[u8]| {
    let (name, header) = match data.iter().position(|&b| b == 0) {
        Some(at) => (&data[..at], &data[at + 1..]),
        None => (&b"flash_id"[..], data),
    };
    let Ok(name) = std::str::from_utf8(name) else {
        return;
    };
    let lines: Vec<&[u8]> = header.split(|&b| b == b'\n').collect();
    let incoming = Incoming::new(&lines, false);
    // Lines that are not header values are left out, as a server would refuse them.
    let kept: Vec<&[u8]> = lines.iter().copied().filter(|l| is_header_value(l)).collect();
    let expected = reference(&kept, name.as_bytes()).and_then(|v| std::str::from_utf8(v).ok());
    assert_eq!(incoming.cookie(name), expected);
    let _ = format!("{incoming:?}");

    // Whatever the other cookies hold, a flash cookie after them is found.
    if !name.is_empty()
        && !name.bytes().any(|b| b == b';' || b == b'=' || b.is_ascii_whitespace())
    {
        let mut line = header.to_vec();
        line.retain(|&b| b != b'\n');
        if reference(&[&line], name.as_bytes()).is_some() {
            return;
        }
        line.extend_from_slice(b"; ");
        line.extend_from_slice(name.as_bytes());
        line.extend_from_slice(b"=v1.sig");
        if is_header_value(&line) {
            let incoming = Incoming::new([&line], false);
            assert_eq!(incoming.cookie(name), Some("v1.sig"));
        }
    }
});
