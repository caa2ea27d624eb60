//! A client's value, as the scripts pack it (src/lua/common.lua has the layout): read here to
//! take a lease's messages from its answer and to compute the value once the lease is
//! consumed, and written here for a new client's append, so that the scripts' common paths
//! run almost no Lua.

/// The first byte of every value flash writes.
pub(crate) const MAGIC: u8 = 0xFA;
const HEADER: usize = 9;
const OP: usize = 18;
const LEASE: usize = 14;
const RECORD: usize = 9;
/// The largest time the layout holds (6 bytes of ms: year 10 889).
const MAX_TIME: u64 = (1 << 48) - 1;

/// One write applied in the dedupe window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Op {
    pub(crate) id: [u8; 8],
    pub(crate) at: u64,
    pub(crate) kept: u32,
}

/// One stored message: its lease (0 visible, k the k-th lease), its size as the limits count
/// it, its stored form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Stored<'a> {
    pub(crate) holder: u8,
    pub(crate) size: u32,
    pub(crate) body: &'a [u8],
}

/// A client's whole state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Value<'a> {
    pub(crate) until: u64,
    pub(crate) ops: Vec<Op>,
    pub(crate) leases: Vec<([u8; 8], u64)>,
    pub(crate) msgs: Vec<Stored<'a>>,
}

fn be(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0, |n, b| (n << 8) | u64::from(*b))
}

fn put(out: &mut Vec<u8>, n: u64, width: usize) {
    out.extend_from_slice(&n.to_be_bytes()[8 - width..]);
}

impl<'a> Value<'a> {
    /// Reads a value; `None` when it is not one flash wrote (or is cut short).
    pub(crate) fn parse(raw: &'a [u8]) -> Option<Value<'a>> {
        if raw.len() < HEADER || raw[0] != MAGIC {
            return None;
        }
        let until = be(&raw[1..7]);
        let (nops, nleases) = (usize::from(raw[7]), usize::from(raw[8]));
        let mut pos = HEADER;
        let mut ops = Vec::with_capacity(nops);
        for _ in 0..nops {
            let op = raw.get(pos..pos + OP)?;
            ops.push(Op {
                id: op[..8].try_into().ok()?,
                at: be(&op[8..14]),
                kept: u32::try_from(be(&op[14..18])).ok()?,
            });
            pos += OP;
        }
        let mut leases = Vec::with_capacity(nleases);
        for _ in 0..nleases {
            let lease = raw.get(pos..pos + LEASE)?;
            leases.push((lease[..8].try_into().ok()?, be(&lease[8..14])));
            pos += LEASE;
        }
        let mut msgs = Vec::new();
        while pos < raw.len() {
            let head = raw.get(pos..pos + RECORD)?;
            let len = usize::try_from(be(&head[5..9])).ok()?;
            let body = raw.get(pos + RECORD..(pos + RECORD).checked_add(len)?)?;
            msgs.push(Stored {
                holder: head[0],
                size: u32::try_from(be(&head[1..5])).ok()?,
                body,
            });
            pos += RECORD + len;
        }
        Some(Value {
            until,
            ops,
            leases,
            msgs,
        })
    }

    /// The packed value (the scripts' `encode`, without dropping leases: callers keep only
    /// leases some message names).
    pub(crate) fn to_bytes(&self) -> Vec<u8> {
        let bodies: usize = self.msgs.iter().map(|m| RECORD + m.body.len()).sum();
        let mut out =
            Vec::with_capacity(HEADER + OP * self.ops.len() + LEASE * self.leases.len() + bodies);
        out.push(MAGIC);
        let until = if self.msgs.is_empty() { 0 } else { self.until };
        put(&mut out, until.min(MAX_TIME), 6);
        out.push(u8::try_from(self.ops.len()).unwrap_or(u8::MAX));
        out.push(u8::try_from(self.leases.len()).unwrap_or(u8::MAX));
        for op in self.ops.iter().take(usize::from(u8::MAX)) {
            out.extend_from_slice(&op.id);
            put(&mut out, op.at.min(MAX_TIME), 6);
            put(&mut out, u64::from(op.kept), 4);
        }
        for (id, until) in self.leases.iter().take(usize::from(u8::MAX)) {
            out.extend_from_slice(id);
            put(&mut out, (*until).min(MAX_TIME), 6);
        }
        for m in &self.msgs {
            record(&mut out, m.holder, m.size, m.body);
        }
        out
    }

    /// When the key must expire (ms): when its messages do and its newest op leaves the
    /// dedupe window; 0 when it holds nothing to keep.
    pub(crate) fn deadline(&self, window: u64) -> u64 {
        let messages = if self.msgs.is_empty() { 0 } else { self.until };
        self.ops
            .iter()
            .map(|op| op.at.saturating_add(window))
            .fold(messages, u64::max)
    }

    /// The position (1-based, as holders name it) of lease `id`.
    pub(crate) fn lease_index(&self, id: &[u8]) -> Option<u8> {
        let at = self.leases.iter().position(|(lease, _)| lease == id)?;
        u8::try_from(at + 1).ok()
    }

    /// This value once lease `mine` is consumed: its messages deleted, its lease dropped (and
    /// the holders after it renumbered), ops that left the window at `now` forgotten.
    pub(crate) fn consumed(&self, mine: u8, now: u64, window: u64) -> Value<'a> {
        let msgs = self
            .msgs
            .iter()
            .filter(|m| m.holder != mine)
            .map(|m| Stored {
                holder: if m.holder > mine {
                    m.holder - 1
                } else {
                    m.holder
                },
                ..m.clone()
            })
            .collect();
        let mut leases = self.leases.clone();
        leases.remove(usize::from(mine) - 1);
        Value {
            until: self.until,
            ops: self
                .ops
                .iter()
                .filter(|op| op.at.saturating_add(window) > now)
                .cloned()
                .collect(),
            leases,
            msgs,
        }
    }
}

/// The value of a client with nothing stored once `records` (packed by [`record`]) are
/// appended under operation `op` at `now`, to expire at `until`.
pub(crate) fn fresh(until: u64, op: &[u8; 8], now: u64, records: &[Vec<u8>]) -> Vec<u8> {
    let bodies: usize = records.iter().map(Vec::len).sum();
    let mut out = Vec::with_capacity(HEADER + OP + bodies);
    out.push(MAGIC);
    put(&mut out, until.min(MAX_TIME), 6);
    out.extend_from_slice(&[1, 0]);
    out.extend_from_slice(op);
    put(&mut out, now.min(MAX_TIME), 6);
    put(&mut out, records.len() as u64, 4);
    for record in records {
        out.extend_from_slice(record);
    }
    out
}

/// One message as the value holds it: holder, size, length, stored form.
pub(crate) fn record(out: &mut Vec<u8>, holder: u8, size: u32, body: &[u8]) {
    out.push(holder);
    put(out, u64::from(size), 4);
    put(out, body.len() as u64, 4);
    out.extend_from_slice(body);
}

/// The first byte of a shared key's value (`RedisStoreBuilder::shared_keys`).
pub(crate) const SHARED: u8 = 0xFB;
/// A client's entry in a shared key: id, deadline (6 bytes, ms), length (4), its value.
const MEMBER: usize = 16 + 6 + 4;

/// One client of a shared key: its id, its deadline (ms), its value.
pub(crate) type Member<'a> = (&'a [u8], u64, &'a [u8]);

/// The clients of a shared key's value, as (id, deadline, value), in order; `None` when the
/// value is not one flash wrote (or is cut short). Clients past their deadline are included.
pub(crate) fn members(raw: &[u8]) -> Option<Vec<Member<'_>>> {
    let (&first, mut rest) = raw.split_first()?;
    if first != SHARED {
        return None;
    }
    let mut out = Vec::new();
    while !rest.is_empty() {
        let head = rest.get(..MEMBER)?;
        let len = usize::try_from(be(&head[22..26])).ok()?;
        let value = rest.get(MEMBER..MEMBER.checked_add(len)?)?;
        out.push((&head[..16], be(&head[16..22]), value));
        rest = &rest[MEMBER + len..];
    }
    Some(out)
}

/// A shared key's value with client `id`'s value replaced by `value`, to go at `deadline`
/// (dropped when `value` is `None`), and the clients past their deadline at `now` dropped, as
/// the scripts do; with the latest deadline left (0: nothing left, the key goes).
pub(crate) fn replace_member(
    members: &[Member<'_>],
    id: &[u8],
    value: Option<(&[u8], u64)>,
    now: u64,
) -> (Vec<u8>, u64) {
    let mut out = vec![SHARED];
    let mut last = 0;
    let mut push = |out: &mut Vec<u8>, who: &[u8], until: u64, value: &[u8]| {
        if until > now {
            out.extend_from_slice(who);
            put(out, until.min(MAX_TIME), 6);
            put(out, value.len() as u64, 4);
            out.extend_from_slice(value);
            last = last.max(until);
        }
    };
    for &(who, until, old) in members {
        match value {
            _ if who != id => push(&mut out, who, until, old),
            Some((new, until)) => push(&mut out, who, until, new),
            None => {}
        }
    }
    if last == 0 {
        out.clear();
    }
    (out, last)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<u8> {
        let mut raw = vec![MAGIC];
        put(&mut raw, 5_000, 6);
        raw.extend_from_slice(&[1, 2]);
        raw.extend_from_slice(b"opopopop");
        put(&mut raw, 1_000, 6);
        put(&mut raw, 3, 4);
        raw.extend_from_slice(b"leaseAAA");
        put(&mut raw, 2_000, 6);
        raw.extend_from_slice(b"leaseBBB");
        put(&mut raw, 3_000, 6);
        record(&mut raw, 1, 2, b"[20,\"hi\"]");
        record(&mut raw, 0, 1, b"[25,\"x\"]");
        record(&mut raw, 2, 1, b"[30,\"y\"]");
        raw
    }

    #[test]
    fn round_trip() {
        let raw = sample();
        let value = Value::parse(&raw).expect("parse");
        assert_eq!(value.to_bytes(), raw);
        assert_eq!(value.until, 5_000);
        assert_eq!(value.ops[0].kept, 3);
        assert_eq!(value.msgs.len(), 3);
        assert_eq!(value.msgs[0].body, b"[20,\"hi\"]");
        assert_eq!(value.lease_index(b"leaseBBB"), Some(2));
        assert_eq!(value.deadline(60_000), 61_000);
    }

    #[test]
    fn consuming_drops_the_lease_and_renumbers() {
        let raw = sample();
        let value = Value::parse(&raw).expect("parse");
        let left = value.consumed(1, 100_000, 60_000);
        assert_eq!(left.leases, vec![(*b"leaseBBB", 3_000)]);
        assert_eq!(
            left.msgs.iter().map(|m| m.holder).collect::<Vec<_>>(),
            [0, 1]
        );
        assert!(left.ops.is_empty(), "the op left the window");
        let left = value.consumed(2, 1_000, 60_000);
        assert_eq!(left.ops.len(), 1);
        assert_eq!(
            left.msgs.iter().map(|m| m.holder).collect::<Vec<_>>(),
            [1, 0]
        );
    }

    #[test]
    fn a_fresh_value_reads_back() {
        let mut one = Vec::new();
        record(&mut one, 0, 2, b"[20,\"hi\"]");
        let raw = fresh(9_000, b"opopopop", 1_000, &[one.clone(), one]);
        let value = Value::parse(&raw).expect("parse");
        assert_eq!(value.until, 9_000);
        assert_eq!(
            value.ops,
            [Op {
                id: *b"opopopop",
                at: 1_000,
                kept: 2
            }]
        );
        assert!(value.leases.is_empty());
        assert_eq!(value.msgs.len(), 2);
        assert_eq!(value.to_bytes(), raw);
    }

    #[test]
    fn a_shared_key_is_read_and_edited_by_client() {
        let (a, b, c) = ([1u8; 16], [2u8; 16], [3u8; 16]);
        let first: Vec<Member<'_>> = vec![(&a, 5_000, b"aaa"), (&b, 9_000, b"bb")];
        let (raw, last) = replace_member(&first, &c, Some((b"c", 7_000)), 1_000);
        assert_eq!(last, 9_000);
        // `c` was not there: only a client present is replaced.
        assert_eq!(members(&raw).expect("read"), first);
        let (raw, last) = replace_member(&first, &a, Some((b"new", 4_000)), 1_000);
        assert_eq!(last, 9_000);
        let read = members(&raw).expect("read");
        assert_eq!(read, [(&a[..], 4_000, &b"new"[..]), (&b, 9_000, b"bb")]);
        // Past its deadline a client is dropped; with nobody left, the value is empty.
        let (raw, last) = replace_member(&read, &a, None, 8_000);
        assert_eq!(members(&raw).expect("read"), [(&b[..], 9_000, &b"bb"[..])]);
        assert_eq!(last, 9_000);
        let (raw, last) = replace_member(&read, &b, None, 4_500);
        assert_eq!((raw, last), (Vec::new(), 0));
        assert_eq!(members(b""), None);
        assert_eq!(
            members(&[MAGIC]),
            None,
            "a client's value, not a shared key's"
        );
        assert_eq!(members(&[SHARED, 1, 2]), None, "cut short");
        let mut cut = replace_member(&first, &c, None, 0).0;
        cut.pop();
        assert_eq!(members(&cut), None, "cut short");
        assert_eq!(members(&[SHARED]), Some(Vec::new()));
    }

    #[test]
    fn garbage_is_not_a_value() {
        assert_eq!(Value::parse(b""), None);
        assert_eq!(Value::parse(b"a string"), None);
        assert_eq!(Value::parse(b"a string that is long"), None);
        let mut raw = sample();
        raw.truncate(raw.len() - 1);
        assert_eq!(Value::parse(&raw), None, "cut short");
        assert_eq!(Value::parse(&[MAGIC, 0, 0, 0, 0, 0, 0, 5, 0]), None);
    }
}
