//! safetensors' file layout, written as a stream into a file gan-run opened itself: a
//! checkpoint goes tensor by tensor into the exclusive temporary of
//! [`crate::files::write_atomic_with`], never into a file opened by name.

use std::collections::HashMap;
use std::io::Write;

use safetensors::tensor::{TensorInfo, View};

/// safetensors' layout, streamed into `out`: the header's length, the header, then each
/// tensor's bytes. (`safetensors::serialize_to_file` streams too, but only into a file it opens
/// by name itself, truncating and following links.) `tensors` come sorted by name, which is
/// safetensors' order for tensors of one dtype.
pub(super) fn stream<V: View>(
    tensors: &[(String, V)],
    metadata: &HashMap<String, String>,
    out: &mut impl Write,
) -> std::io::Result<()> {
    struct Header<'a>(&'a HashMap<String, String>, Vec<(&'a str, TensorInfo)>);
    impl serde::Serialize for Header<'_> {
        fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
            use serde::ser::SerializeMap;
            let mut map = s.serialize_map(Some(self.1.len() + 1))?;
            map.serialize_entry("__metadata__", self.0)?;
            for (name, info) in &self.1 {
                map.serialize_entry(name, info)?;
            }
            map.end()
        }
    }
    debug_assert!(tensors.windows(2).all(|w| w[0].0 < w[1].0));
    let mut offset = 0;
    let infos = tensors
        .iter()
        .map(|(name, t)| {
            let (dtype, shape) = (t.dtype(), t.shape().to_vec());
            let data_offsets = (offset, offset + t.data_len());
            offset = data_offsets.1;
            let info = TensorInfo {
                dtype,
                shape,
                data_offsets,
            };
            (name.as_str(), info)
        })
        .collect();
    let mut header = serde_json::to_vec(&Header(metadata, infos))?;
    // The data starts 8-byte aligned: the header is padded with spaces.
    header.resize(header.len().next_multiple_of(8), b' ');
    let mut out = std::io::BufWriter::new(out);
    out.write_all(&(header.len() as u64).to_le_bytes())?;
    out.write_all(&header)?;
    for (_, t) in tensors {
        out.write_all(&t.data())?;
    }
    out.flush()
}

#[cfg(test)]
mod tests {
    use super::*;
    use safetensors::tensor::{Dtype, TensorView};

    /// The stream is, byte for byte, what safetensors' own serialisation makes of the same
    /// tensors and metadata.
    #[test]
    fn the_streamed_layout_is_safetensors_own() {
        let data: Vec<(String, Vec<usize>, Vec<u8>)> =
            [("a.bias", vec![3]), ("b.weight", vec![2, 5])]
                .into_iter()
                .map(|(name, shape)| {
                    let n: usize = shape.iter().product();
                    let bytes = (0..n * 4).map(|i| (i * 37 % 251) as u8).collect();
                    (name.to_string(), shape, bytes)
                })
                .collect();
        let views = || {
            data.iter().map(|(n, shape, d)| {
                (
                    n.clone(),
                    TensorView::new(Dtype::F32, shape.clone(), d).unwrap(),
                )
            })
        };
        let metadata: HashMap<String, String> = [("format", "x"), ("epoch", "3"), ("k", "v")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let tensors: Vec<_> = views().collect();
        let mut streamed = Vec::new();
        stream(&tensors, &metadata, &mut streamed).unwrap();
        let library = safetensors::serialize(views(), &Some(metadata.clone())).unwrap();
        assert!(streamed == library, "the stream is not safetensors' layout");
    }
}
