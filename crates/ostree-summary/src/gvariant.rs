//! Just enough of the GVariant serialization format to walk an ostree
//! summary: framing offsets, alignment, strings, variants and arrays.
//!
//! Every read is bounds-checked; data that is not in normal form is an
//! error, never a panic or a default, because summaries also come from
//! mirrors we do not trust.

use crate::{Error, Metadata};

/// Size in bytes of each framing offset in a container of `size` bytes.
pub(crate) fn offset_size(size: usize) -> usize {
    match size {
        0..=0xff => 1,
        0x100..=0xffff => 2,
        0x1_0000..=0xffff_ffff => 4,
        _ => 8,
    }
}

pub(crate) fn align_up(pos: usize, align: usize) -> usize {
    (pos + align - 1) & !(align - 1)
}

fn read_offset(data: &[u8], at: usize, osz: usize) -> Result<usize, Error> {
    let bytes = data
        .get(at..at + osz)
        .ok_or(Error::Malformed("framing offset out of bounds"))?;
    let mut v: u64 = 0;
    for (i, b) in bytes.iter().enumerate() {
        v |= (*b as u64) << (8 * i);
    }
    usize::try_from(v).map_err(|_| Error::Malformed("framing offset too large"))
}

/// The elements of an array of variable-size elements aligned to `align`.
pub(crate) fn variable_array(data: &[u8], align: usize) -> Result<Vec<&[u8]>, Error> {
    let size = data.len();
    if size == 0 {
        return Ok(Vec::new());
    }
    let osz = offset_size(size);
    let table = read_offset(
        data,
        size.checked_sub(osz)
            .ok_or(Error::Malformed("array too short"))?,
        osz,
    )?;
    if table > size || (size - table) % osz != 0 {
        return Err(Error::Malformed("array offset table"));
    }
    let n = (size - table) / osz;
    let mut out = Vec::with_capacity(n);
    let mut start = 0;
    for i in 0..n {
        let end = read_offset(data, table + i * osz, osz)?;
        let begin = align_up(start, align);
        if begin > end || end > table {
            return Err(Error::Malformed("array element bounds"));
        }
        if data[start..begin].iter().any(|&b| b != 0) {
            return Err(Error::Malformed("non-zero padding"));
        }
        out.push(&data[begin..end]);
        start = end;
    }
    Ok(out)
}

/// A member of a tuple type, as far as layout is concerned.
#[derive(Clone, Copy)]
pub(crate) enum Member {
    /// Fixed size with this size and alignment.
    Fixed(usize, usize),
    /// Variable size with this alignment.
    Variable(usize),
}

/// Splits a tuple (or dict entry) into its `N` members.
pub(crate) fn tuple<'a, const N: usize>(
    data: &'a [u8],
    members: &[Member; N],
) -> Result<[&'a [u8]; N], Error> {
    let size = data.len();
    let osz = offset_size(size);
    let mut out: [&[u8]; N] = [&[]; N];
    let mut pos = 0;
    let mut offsets_used = 0;
    for (i, m) in members.iter().enumerate() {
        let last = i + 1 == members.len();
        let (align, end) = match *m {
            Member::Fixed(len, align) => (align, align_up(pos, align) + len),
            Member::Variable(align) if last => {
                let end = size
                    .checked_sub(offsets_used * osz)
                    .ok_or(Error::Malformed("tuple too short"))?;
                (align, end)
            }
            Member::Variable(align) => {
                offsets_used += 1;
                let at = size
                    .checked_sub(offsets_used * osz)
                    .ok_or(Error::Malformed("tuple too short"))?;
                (align, read_offset(data, at, osz)?)
            }
        };
        let begin = align_up(pos, align);
        if begin > end || end > size {
            return Err(Error::Malformed("tuple member bounds"));
        }
        out[i] = &data[begin..end];
        pos = end;
    }
    Ok(out)
}

/// A string (`s`): its bytes up to the terminating NUL, as UTF-8.
pub(crate) fn string(data: &[u8]) -> Result<&str, Error> {
    match data.split_last() {
        Some((0, body)) if !body.contains(&0) => {
            std::str::from_utf8(body).map_err(|_| Error::Malformed("string is not UTF-8"))
        }
        _ => Err(Error::Malformed("string not NUL-terminated")),
    }
}

/// A variant (`v`): the contained value's bytes and its type string.
pub(crate) fn variant(data: &[u8]) -> Result<(&[u8], &str), Error> {
    let nul = data
        .iter()
        .rposition(|&b| b == 0)
        .ok_or(Error::Malformed("variant without type"))?;
    let ty = std::str::from_utf8(&data[nul + 1..]).map_err(|_| Error::Malformed("variant type"))?;
    if ty.is_empty() {
        return Err(Error::Malformed("variant with empty type"));
    }
    Ok((&data[..nul], ty))
}

/// The entries of an `a{sv}` dictionary.
pub(crate) fn vardict(data: &[u8]) -> Result<Vec<Metadata<'_>>, Error> {
    let entries = variable_array(data, 8)?;
    let mut out = Vec::with_capacity(entries.len());
    for e in entries {
        let parts = tuple(e, &[Member::Variable(1), Member::Variable(8)])?;
        let key = string(parts[0])?;
        let (value, ty) = variant(parts[1])?;
        out.push(Metadata {
            key,
            type_string: ty,
            data: value,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offset_sizes_follow_container_size() {
        assert_eq!(offset_size(0), 1);
        assert_eq!(offset_size(255), 1);
        assert_eq!(offset_size(256), 2);
        assert_eq!(offset_size(65_536), 4);
    }

    #[test]
    fn reads_a_hand_built_vardict() {
        // a{sv} with one entry {"k": <uint32 5>}, as GLib serializes it:
        // entry = "k\0" pad to 8, then 05 00 00 00 00 'u', then the offset
        // of the key's end (2); the array then ends with the entry's end.
        let mut entry = b"k\0\0\0\0\0\0\0".to_vec();
        entry.extend_from_slice(&[5, 0, 0, 0, 0, b'u']);
        entry.push(2);
        let mut arr = entry.clone();
        arr.push(entry.len() as u8);
        let d = vardict(&arr).unwrap();
        assert_eq!(d.len(), 1);
        assert_eq!(
            (d[0].key, d[0].data, d[0].type_string),
            ("k", &[5u8, 0, 0, 0][..], "u")
        );
    }

    #[test]
    fn hostile_framing_is_an_error_not_a_panic() {
        for bad in [
            &b"\xff"[..],
            b"\x00\x05",
            b"abc\x09",
            b"\x01\x01\x01\x01\x00\x00\x00\xfe",
        ] {
            let _ = variable_array(bad, 8);
            let _ = vardict(bad);
            let _ = tuple(bad, &[Member::Variable(1), Member::Variable(8)]);
        }
        assert!(string(b"no nul").is_err());
        assert!(variant(b"").is_err());
    }
}
