//! NumPy arrays: `.npy` files (little-endian, C order; float16/32/64, int8/32/64, uint8,
//! bool) and `.npz` archives of them (NumPy's `savez`, stored or deflated).

use std::io::{Read, Seek};
use std::path::Path;

use anyhow::{anyhow, bail, Context, Result};

use crate::tensor::TensorData;

/// An array, in memory or read row by row from its file (a `.npy`, or an uncompressed member
/// of an `.npz`): a pass over a dataset of any size then holds one row per worker, not the
/// file.
#[derive(Debug)]
pub struct Array {
    pub shape: Vec<usize>,
    storage: Storage,
}

#[derive(Debug)]
enum Storage {
    Memory(TensorData),
    Disk {
        file: std::sync::Mutex<std::fs::File>,
        path: std::path::PathBuf,
        elem: &'static str,
        /// Where the values start in the file.
        start: u64,
    },
}

impl Array {
    pub fn in_memory(shape: Vec<usize>, data: TensorData) -> Array {
        Array {
            shape,
            storage: Storage::Memory(data),
        }
    }

    /// Whether the values stay on disk until asked for.
    pub fn is_on_disk(&self) -> bool {
        matches!(self.storage, Storage::Disk { .. })
    }

    /// The values of sample `i` along the first axis, as a batch of one; `None` past the end.
    pub fn sample(&self, i: usize) -> Result<Option<(Vec<usize>, TensorData)>> {
        let Some(&rows) = self.shape.first() else {
            return Ok(None);
        };
        if i >= rows {
            return Ok(None);
        }
        let per: usize = self.shape[1..].iter().product();
        let mut shape = vec![1];
        shape.extend_from_slice(&self.shape[1..]);
        Ok(Some((shape, self.values(i * per, per)?)))
    }

    /// Every value.
    pub fn data(&self) -> Result<TensorData> {
        let count = self.shape.iter().product();
        self.values(0, count)
    }

    fn values(&self, first: usize, count: usize) -> Result<TensorData> {
        let range = first..first + count;
        match &self.storage {
            Storage::Memory(data) => Ok(match data {
                TensorData::F32(v) => TensorData::F32(v[range].to_vec()),
                TensorData::F16(v) => TensorData::F16(v[range].to_vec()),
                TensorData::F64(v) => TensorData::F64(v[range].to_vec()),
                TensorData::I64(v) => TensorData::I64(v[range].to_vec()),
                TensorData::I32(v) => TensorData::I32(v[range].to_vec()),
                TensorData::I8(v) => TensorData::I8(v[range].to_vec()),
                TensorData::U8(v) => TensorData::U8(v[range].to_vec()),
                TensorData::Bool(v) => TensorData::Bool(v[range].to_vec()),
            }),
            Storage::Disk {
                file,
                path,
                elem,
                start,
            } => {
                use std::io::SeekFrom;
                let size = elem_size(elem) as u64;
                let mut bytes = vec![0u8; count * size as usize];
                let mut f = file
                    .lock()
                    .map_err(|_| anyhow!("{}: a reader failed", path.display()))?;
                f.seek(SeekFrom::Start(start + first as u64 * size))
                    .and_then(|_| f.read_exact(&mut bytes))
                    .with_context(|| {
                        format!(
                            "{}: cannot read values {first}..{} (was the file changed?)",
                            path.display(),
                            first + count
                        )
                    })?;
                Ok(decode(elem, &bytes))
            }
        }
    }
}

/// Opens a `.npy` file: the header is checked and the file's length against it; the values
/// are read when a sample is asked for.
pub fn read(path: &Path) -> Result<Array> {
    let file =
        std::fs::File::open(path).with_context(|| format!("{}: cannot read", path.display()))?;
    on_disk(file, path, 0).with_context(|| format!("{}: not a readable .npy file", path.display()))
}

/// The array whose `.npy` bytes start at `offset` of `file` (and run to at least its end).
fn on_disk(mut file: std::fs::File, path: &Path, offset: u64) -> Result<Array> {
    use std::io::SeekFrom;
    let length = file.metadata()?.len();
    let mut head = vec![0u8; 12];
    file.seek(SeekFrom::Start(offset))?;
    let n = (&mut file).take(12).read(&mut head)?;
    head.truncate(n);
    let header_len = header_length(&head)?;
    let mut head = vec![0u8; header_len];
    file.seek(SeekFrom::Start(offset))?;
    file.read_exact(&mut head)
        .map_err(|_| anyhow!("truncated header"))?;
    let h = parse_header(&head)?;
    let start = offset + h.data_start as u64;
    if length.saturating_sub(start) < h.bytes as u64 {
        bail!(
            "truncated: shape {:?} needs {} bytes, found {}",
            h.shape,
            h.bytes,
            length.saturating_sub(start)
        );
    }
    Ok(Array {
        shape: h.shape,
        storage: Storage::Disk {
            file: std::sync::Mutex::new(file),
            path: path.to_path_buf(),
            elem: h.elem,
            start,
        },
    })
}

/// Reads every array of an `.npz` archive, by name (the member's file name without `.npy`),
/// in the archive's order. Uncompressed members (NumPy's `savez`) stay on disk, read row by
/// row; compressed ones (`savez_compressed`) cannot be read from the middle and are inflated
/// into memory.
pub fn read_npz(path: &Path) -> Result<Vec<(String, Array)>> {
    let file =
        std::fs::File::open(path).with_context(|| format!("{}: cannot open", path.display()))?;
    let mut arrays = read_npz_from(std::io::BufReader::new(file), path, true)?;
    for (name, array) in &mut arrays {
        if let Storage::Disk { start, .. } = array.storage {
            let file = std::fs::File::open(path)
                .with_context(|| format!("{}: cannot open", path.display()))?;
            *array = on_disk(file, path, start).with_context(|| {
                format!("{}: array '{name}' is not a readable .npy", path.display())
            })?;
        }
    }
    Ok(arrays)
}

/// [`read_npz`] from any reader; `path` names it in errors. A member is read only up to the
/// size its header declares, and only when that fits in memory (a zip bomb is refused before
/// it inflates). With `leave_stored`, uncompressed members are not read: each is returned as
/// a placeholder on disk at the offset of its `.npy` bytes, for [`read_npz`] to open.
pub fn read_npz_from(
    reader: impl Read + Seek,
    path: &Path,
    leave_stored: bool,
) -> Result<Vec<(String, Array)>> {
    let mut archive = zip::ZipArchive::new(reader)
        .map_err(|e| anyhow!("{}: not a readable .npz archive ({e})", path.display()))?;
    let mut arrays = vec![];
    for k in 0..archive.len() {
        let mut member = archive
            .by_index(k)
            .map_err(|e| anyhow!("{}: member {k}: {e}", path.display()))?;
        let name = member
            .name()
            .map_err(|e| anyhow!("{}: member {k}: {e}", path.display()))?
            .to_string();
        let Some(stem) = name.strip_suffix(".npy") else {
            continue;
        };
        if leave_stored && member.compression() == zip::CompressionMethod::Stored {
            if let Some(start) = member.data_start() {
                let placeholder = Array {
                    shape: vec![],
                    storage: Storage::Disk {
                        file: std::sync::Mutex::new(
                            std::fs::File::open(path)
                                .with_context(|| format!("{}: cannot open", path.display()))?,
                        ),
                        path: path.to_path_buf(),
                        elem: "u1",
                        start,
                    },
                };
                arrays.push((stem.to_string(), placeholder));
                continue;
            }
        }
        let declared = member.size();
        crate::host::check_fits_in_memory(
            declared,
            &format!("{}: array '{name}'", path.display()),
        )?;
        let mut bytes = Vec::with_capacity(declared.min(64 << 20) as usize);
        (&mut member)
            .take(declared)
            .read_to_end(&mut bytes)
            .map_err(|e| anyhow!("{}: cannot read '{name}': {e}", path.display()))?;
        let array = parse(&bytes).with_context(|| {
            format!("{}: array '{stem}' is not a readable .npy", path.display())
        })?;
        arrays.push((stem.to_string(), array));
    }
    if arrays.is_empty() {
        bail!("{}: the archive holds no .npy arrays", path.display());
    }
    Ok(arrays)
}

/// A parsed `.npy` header.
struct Header {
    shape: Vec<usize>,
    elem: &'static str,
    /// Where the values start, from the magic bytes.
    data_start: usize,
    bytes: usize,
}

/// The header's length including the magic bytes, from the first 10 or 12 bytes.
fn header_length(bytes: &[u8]) -> Result<usize> {
    if bytes.len() < 10 || &bytes[..6] != b"\x93NUMPY" {
        bail!("missing the .npy magic bytes");
    }
    match bytes[6] {
        1 => Ok(u16::from_le_bytes([bytes[8], bytes[9]]) as usize + 10),
        2 | 3 if bytes.len() >= 12 => {
            Ok(u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize + 12)
        }
        v => bail!("unsupported .npy version {v}"),
    }
}

fn elem_size(elem: &str) -> usize {
    elem[1..].parse().unwrap_or(1)
}

fn parse_header(bytes: &[u8]) -> Result<Header> {
    let end = header_length(bytes)?;
    let start = if bytes[6] == 1 { 10 } else { 12 };
    let header = std::str::from_utf8(
        bytes
            .get(start..end)
            .ok_or_else(|| anyhow!("truncated header"))?,
    )?;
    let field = |key: &str| -> Result<&str> {
        let at = header
            .find(key)
            .ok_or_else(|| anyhow!("header lacks {key}"))?;
        Ok(header[at + key.len()..].trim_start_matches([':', ' ', '\'']))
    };
    let descr = field("'descr'")?;
    let code: String = descr.chars().take_while(|c| *c != '\'').collect();
    // '|' marks a one-byte type (no byte order); '<' little-endian; '=' native (little here).
    // The first character (not byte: the header is any text) is the byte order.
    let (order, kind) = code.split_at(code.chars().next().map_or(0, char::len_utf8));
    if !matches!(order, "<" | "|" | "=") {
        bail!("only little-endian arrays are supported (descr '{code}')");
    }
    let elem = match kind {
        "f4" => "f4",
        "f8" => "f8",
        "f2" => "f2",
        "i8" => "i8",
        "i4" => "i4",
        "i1" => "i1",
        "u1" => "u1",
        "b1" => "b1",
        _ => bail!(
            "unsupported element type '{code}' (float16/32/64, int8/32/64, uint8 and bool are)"
        ),
    };
    if field("'fortran_order'")?.starts_with("True") {
        bail!("Fortran-order arrays are not supported");
    }
    let shape_text = field("'shape'")?;
    let open = shape_text.find('(').ok_or_else(|| anyhow!("bad shape"))?;
    let close = shape_text.find(')').ok_or_else(|| anyhow!("bad shape"))?;
    if close < open {
        bail!("bad shape");
    }
    let shape: Vec<usize> = shape_text[open + 1..close]
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.parse().map_err(|_| anyhow!("bad dimension '{s}'")))
        .collect::<Result<_>>()?;
    let bytes_needed = shape
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .and_then(|c| c.checked_mul(elem_size(elem)))
        .ok_or_else(|| anyhow!("shape {shape:?} is too large"))?;
    Ok(Header {
        shape,
        elem,
        data_start: end,
        bytes: bytes_needed,
    })
}

fn decode(elem: &str, body: &[u8]) -> TensorData {
    match elem {
        "f4" => TensorData::F32(
            body.chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect(),
        ),
        "f8" => TensorData::F64(
            body.chunks_exact(8)
                .map(|b| f64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]))
                .collect(),
        ),
        "f2" => TensorData::F16(
            body.chunks_exact(2)
                .map(|b| half::f16::from_le_bytes([b[0], b[1]]))
                .collect(),
        ),
        "i8" => TensorData::I64(
            body.chunks_exact(8)
                .map(|b| i64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]))
                .collect(),
        ),
        "i4" => TensorData::I32(
            body.chunks_exact(4)
                .map(|b| i32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect(),
        ),
        "i1" => TensorData::I8(body.iter().map(|&b| b as i8).collect()),
        "u1" => TensorData::U8(body.to_vec()),
        _ => TensorData::Bool(body.iter().map(|&b| b != 0).collect()),
    }
}

/// An array from the bytes of a whole `.npy`.
pub fn parse(bytes: &[u8]) -> Result<Array> {
    let h = parse_header(bytes)?;
    let body = &bytes[h.data_start..];
    if body.len() < h.bytes {
        bail!(
            "truncated: shape {:?} needs {} bytes, found {}",
            h.shape,
            h.bytes,
            body.len()
        );
    }
    let data = decode(h.elem, &body[..h.bytes]);
    Ok(Array::in_memory(h.shape, data))
}

/// Writes a little-endian float32 C-order `.npy` (version 1.0), atomically.
pub fn write(path: &Path, shape: &[usize], data: &[f32]) -> Result<()> {
    write_data(path, shape, &TensorData::F32(data.to_vec()))
}

/// Writes an array of any supported element type as `.npy`, atomically.
pub fn write_data(path: &Path, shape: &[usize], data: &TensorData) -> Result<()> {
    crate::fileio::write_atomic(path, &encode(shape, data))
}

/// Writes named arrays as an (uncompressed) `.npz`, as NumPy's `savez` does, atomically.
pub fn write_npz(path: &Path, arrays: &[(String, Vec<usize>, TensorData)]) -> Result<()> {
    use std::io::Write;
    let mut buffer = std::io::Cursor::new(Vec::new());
    {
        let mut zip = zip::ZipWriter::new(&mut buffer);
        let options = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Stored)
            .large_file(true);
        for (name, shape, data) in arrays {
            zip.start_file(format!("{name}.npy"), options)
                .and_then(|_| zip.write_all(&encode(shape, data)).map_err(Into::into))
                .map_err(|e| anyhow!("{}: cannot add '{name}': {e}", path.display()))?;
        }
        zip.finish()
            .map_err(|e| anyhow!("{}: cannot finish the archive: {e}", path.display()))?;
    }
    crate::fileio::write_atomic(path, buffer.get_ref())
}

/// The bytes of a version-1.0 `.npy` holding `data` with `shape`.
pub fn encode(shape: &[usize], data: &TensorData) -> Vec<u8> {
    let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    let shape_text = if dims.len() == 1 {
        format!("({},)", dims[0])
    } else {
        format!("({})", dims.join(", "))
    };
    let descr = match data {
        TensorData::F32(_) => "<f4",
        TensorData::F16(_) => "<f2",
        TensorData::F64(_) => "<f8",
        TensorData::I64(_) => "<i8",
        TensorData::I32(_) => "<i4",
        TensorData::I8(_) => "|i1",
        TensorData::U8(_) => "|u1",
        TensorData::Bool(_) => "|b1",
    };
    let mut header =
        format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape_text}, }}");
    // Magic (6) + version (2) + length (2) + header + '\n' must be a multiple of 64.
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
    bytes.extend((header.len() as u16).to_le_bytes());
    bytes.extend(header.as_bytes());
    match data {
        TensorData::F32(v) => v.iter().for_each(|x| bytes.extend(x.to_le_bytes())),
        TensorData::F16(v) => v.iter().for_each(|x| bytes.extend(x.to_le_bytes())),
        TensorData::F64(v) => v.iter().for_each(|x| bytes.extend(x.to_le_bytes())),
        TensorData::I64(v) => v.iter().for_each(|x| bytes.extend(x.to_le_bytes())),
        TensorData::I32(v) => v.iter().for_each(|x| bytes.extend(x.to_le_bytes())),
        TensorData::I8(v) => bytes.extend(v.iter().map(|&x| x as u8)),
        TensorData::U8(v) => bytes.extend(v),
        TensorData::Bool(v) => bytes.extend(v.iter().map(|&x| u8::from(x))),
    }
    bytes
}

#[cfg(test)]
mod tests {
    #[test]
    fn parses_a_float32_array() {
        let header = "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }";
        let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
        let padded = format!("{header:<117}\n");
        bytes.extend((padded.len() as u16).to_le_bytes());
        bytes.extend(padded.as_bytes());
        for v in [1.0f32, 2.0, 3.0, 4.0, 5.0, 6.5] {
            bytes.extend(v.to_le_bytes());
        }
        let a = super::parse(&bytes).unwrap();
        assert_eq!(a.shape, vec![2, 3]);
        assert_eq!(
            a.data().unwrap().to_f32(),
            vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.5]
        );
        assert!(super::parse(&bytes[..bytes.len() - 4]).is_err());
    }

    #[test]
    fn write_then_read_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.npy");
        let data: Vec<f32> = (0..24).map(|i| i as f32 * 0.5 - 3.0).collect();
        super::write(&path, &[2, 3, 4], &data).unwrap();
        let a = super::read(&path).unwrap();
        assert_eq!(a.shape, vec![2, 3, 4]);
        assert!(a.is_on_disk());
        assert_eq!(a.data().unwrap().to_f32(), data);
        assert_eq!(a.sample(1).unwrap().unwrap().1.to_f32(), data[12..]);
        // Cut short after opening: the read names the file instead of panicking.
        let bytes = std::fs::read(&path).unwrap();
        std::fs::write(&path, &bytes[..bytes.len() - 8]).unwrap();
        assert!(super::read(&path).is_err());
        std::fs::write(&path, &bytes).unwrap();
        let reopened = super::read(&path).unwrap();
        std::fs::write(&path, &bytes[..bytes.len() - 8]).unwrap();
        let err = reopened.sample(1).unwrap_err();
        assert!(format!("{err:#}").contains("x.npy"), "{err:#}");
    }

    fn npy(header: &str, body: &[u8]) -> Vec<u8> {
        let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
        let padded = format!("{header:<117}\n");
        bytes.extend((padded.len() as u16).to_le_bytes());
        bytes.extend(padded.as_bytes());
        bytes.extend(body);
        bytes
    }

    #[test]
    fn npz_written_then_read_keeps_names_types_and_values() {
        use crate::tensor::TensorData;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.npz");
        let arrays = vec![
            (
                "input_ids".to_string(),
                vec![2, 3],
                TensorData::I64(vec![1, 2, 3, 4, 5, 6]),
            ),
            (
                "mask".to_string(),
                vec![2, 3],
                TensorData::Bool(vec![true, false, true, true, true, false]),
            ),
        ];
        super::write_npz(&path, &arrays).unwrap();
        let back = super::read_npz(&path).unwrap();
        assert_eq!(back.len(), 2);
        for ((name, shape, data), (n2, a)) in arrays.iter().zip(&back) {
            assert!(a.is_on_disk(), "savez's stored members are read row by row");
            assert_eq!((name, shape, data), (n2, &a.shape, &a.data().unwrap()));
            assert_eq!(a.sample(1).unwrap().unwrap().1.len(), 3);
        }
    }

    #[test]
    fn integer_and_bool_arrays_keep_their_type() {
        use crate::tensor::TensorData;
        let body: Vec<u8> = [101i64, -2].iter().flat_map(|v| v.to_le_bytes()).collect();
        let a = super::parse(&npy(
            "{'descr': '<i8', 'fortran_order': False, 'shape': (1, 2), }",
            &body,
        ))
        .unwrap();
        assert_eq!(a.data().unwrap(), TensorData::I64(vec![101, -2]));
        let a = super::parse(&npy(
            "{'descr': '|b1', 'fortran_order': False, 'shape': (3,), }",
            &[1, 0, 1],
        ))
        .unwrap();
        assert_eq!(a.data().unwrap(), TensorData::Bool(vec![true, false, true]));
        assert_eq!(
            a.sample(1).unwrap().unwrap().1,
            TensorData::Bool(vec![false])
        );
        assert!(a.sample(3).unwrap().is_none());
    }

    #[test]
    fn malformed_headers_are_errors_not_panics() {
        for header in [
            "{'descr': '<f4', 'fortran_order': False, 'shape': )2, 3(, }",
            "{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999, 99999999999, 99999999999), }",
            "{'descr': '<f4', 'fortran_order': False, 'shape': (-1,), }",
            "{'descr': '>f4', 'fortran_order': False, 'shape': (1,), }",
            "{'descr': '<c8', 'fortran_order': False, 'shape': (1,), }",
            "{'descr': '<f4', 'shape': (1,), }",
        ] {
            let e = super::parse(&npy(header, &[0; 8])).err().map(|e| e.to_string());
            assert!(e.is_some(), "{header} parsed");
        }
        assert!(super::parse(b"\x93NUMPY\x02\x00\x01").is_err());
        assert!(super::parse(b"\x93NUMPY\x01\x00\xff\xff").is_err());
    }
}
