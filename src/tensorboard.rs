//! TensorBoard event files, so that the curves, grids and sweep points researchers already
//! browse in TensorBoard need no converter. The format is TensorFlow's `Event` protocol buffer
//! in TFRecord framing (length, masked CRC-32C, payload, masked CRC-32C); the few messages
//! needed are encoded here by hand, which is smaller than a protobuf toolchain.
//!
//! An event file is a log: it is appended to and flushed after each epoch, never rewritten (a
//! reader such as TensorBoard follows it by offset). A start that resumes a run writes a new
//! file beginning with a `SessionLog START` at its first step, which tells TensorBoard to drop
//! what an earlier, killed start logged past that step.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// How every event file's name starts (TensorBoard reads the files whose names hold it).
pub const EVENT_FILE_PREFIX: &str = "events.out.tfevents.";

/// What a TensorBoard hyperparameter takes.
#[derive(Debug, Clone, PartialEq)]
pub enum HParamValue {
    /// A number.
    Number(f64),
    /// A string.
    Text(String),
    /// A flag.
    Bool(bool),
}

impl HParamValue {
    /// A TOML value as a hyperparameter: numbers and booleans as themselves, anything else as
    /// its TOML text.
    pub fn from_toml(value: &toml::Value) -> HParamValue {
        match value {
            toml::Value::Integer(i) => HParamValue::Number(*i as f64),
            toml::Value::Float(f) => HParamValue::Number(*f),
            toml::Value::Boolean(b) => HParamValue::Bool(*b),
            toml::Value::String(s) => HParamValue::Text(s.clone()),
            other => HParamValue::Text(other.to_string()),
        }
    }
}

/// An event file being appended to.
pub struct EventFile {
    path: PathBuf,
    file: std::io::BufWriter<std::fs::File>,
}

impl EventFile {
    /// Creates a new event file in `dir` (named, as TensorBoard expects,
    /// `events.out.tfevents.<seconds>.gan-run.<pid>`), starting with its version record.
    pub fn create(dir: &Path) -> Result<EventFile> {
        let now = wall_time();
        let path = dir.join(format!(
            "{EVENT_FILE_PREFIX}{:010}.gan-run.{}",
            now as u64,
            std::process::id()
        ));
        let file =
            crate::files::create_new(&path).map_err(|e| Error::io("cannot create", &path, e))?;
        let mut events = EventFile {
            path,
            file: std::io::BufWriter::new(file),
        };
        let mut event = event_header(now, 0);
        event.bytes(3, b"brain.Event:2");
        events.write_record(&event.0)?;
        Ok(events)
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Marks a (re)start at `step`: TensorBoard drops data an earlier start logged at `step`
    /// or later.
    pub fn start_session(&mut self, step: i64) -> Result<()> {
        let mut log = Message::default();
        log.varint(1, 1); // SessionLog.status = START
        let mut event = event_header(wall_time(), step);
        event.message(6, &log);
        self.write_record(&event.0)
    }

    /// Scalars, one tag each, at `step`. Non-finite values are written as they are
    /// (TensorBoard shows them as such).
    pub fn scalars(&mut self, step: i64, values: &[(&str, f64)]) -> Result<()> {
        let mut summary = Message::default();
        for (tag, value) in values {
            let mut v = Message::default();
            v.bytes(1, tag.as_bytes());
            v.fixed32(2, (*value as f32).to_bits());
            summary.message(1, &v);
        }
        self.write_summary(step, &summary)
    }

    /// An encoded PNG image of `width x height` pixels (greyscale) under `tag` at `step`.
    pub fn image(
        &mut self,
        step: i64,
        tag: &str,
        png: &[u8],
        width: usize,
        height: usize,
    ) -> Result<()> {
        let mut image = Message::default();
        image.varint(1, height as u64);
        image.varint(2, width as u64);
        image.varint(3, 1); // colorspace: greyscale
        image.bytes(4, png);
        let mut v = Message::default();
        v.bytes(1, tag.as_bytes());
        v.message(4, &image);
        let mut summary = Message::default();
        summary.message(1, &v);
        self.write_summary(step, &summary)
    }

    /// The hyperparameters of this run, for TensorBoard's HParams tab: its values in a sweep
    /// (`group` names the sweep point).
    pub fn hparams_session(
        &mut self,
        hparams: &[(String, HParamValue)],
        group: &str,
    ) -> Result<()> {
        let mut start = Message::default();
        for (name, value) in hparams {
            let mut entry = Message::default();
            entry.bytes(1, name.as_bytes());
            entry.message(2, &protobuf_value(value));
            start.message(1, &entry);
        }
        start.bytes(4, group.as_bytes());
        start.fixed64(5, wall_time().to_bits());
        let mut data = Message::default();
        data.message(3, &start); // HParamsPluginData.session_start_info
        let summary = hparams_summary(SESSION_START_TAG, &data);
        self.write_summary(0, &summary)
    }

    /// Writes what has been logged so far through to the file.
    pub fn flush(&mut self) -> Result<()> {
        self.file
            .flush()
            .map_err(|e| Error::io("cannot write", &self.path, e))
    }

    fn write_summary(&mut self, step: i64, summary: &Message) -> Result<()> {
        let mut event = event_header(wall_time(), step);
        event.message(5, summary);
        self.write_record(&event.0)
    }

    fn write_record(&mut self, payload: &[u8]) -> Result<()> {
        let record = record(payload);
        self.file
            .write_all(&record)
            .map_err(|e| Error::io("cannot write", &self.path, e))
    }
}

const SESSION_START_TAG: &str = "_hparams_/session_start_info";
const EXPERIMENT_TAG: &str = "_hparams_/experiment";

/// The bytes of a whole event file holding a sweep's HParams experiment: each swept key with
/// the values it takes, and the metrics (scalar tags) to compare the points by. TensorBoard's
/// HParams tab shows the points as a table and parallel coordinates from it.
pub fn experiment_file(
    name: &str,
    hparams: &[(String, Vec<HParamValue>)],
    metrics: &[&str],
) -> Vec<u8> {
    let mut experiment = Message::default();
    for (key, values) in hparams {
        let mut info = Message::default();
        info.bytes(1, key.as_bytes());
        let kind = match values.first() {
            Some(HParamValue::Number(_)) => 3, // DATA_TYPE_FLOAT64
            Some(HParamValue::Bool(_)) => 2,
            _ => 1, // DATA_TYPE_STRING
        };
        info.varint(4, kind);
        let mut list = Message::default();
        for value in values {
            list.message(1, &protobuf_value(value));
        }
        info.message(5, &list); // domain_discrete
        experiment.message(4, &info);
    }
    for tag in metrics {
        let mut metric_name = Message::default();
        metric_name.bytes(2, tag.as_bytes());
        let mut info = Message::default();
        info.message(1, &metric_name);
        experiment.message(5, &info);
    }
    experiment.bytes(6, name.as_bytes());
    experiment.fixed64(3, wall_time().to_bits());
    let mut data = Message::default();
    data.message(2, &experiment); // HParamsPluginData.experiment
    let summary = hparams_summary(EXPERIMENT_TAG, &data);
    let mut version = event_header(wall_time(), 0);
    version.bytes(3, b"brain.Event:2");
    let mut event = event_header(wall_time(), 0);
    event.message(5, &summary);
    [record(&version.0), record(&event.0)].concat()
}

/// A summary value carrying HParams plugin data, as TensorBoard's own writer makes it: the
/// data in the metadata, an empty float tensor as the value.
fn hparams_summary(tag: &str, data: &Message) -> Message {
    let mut plugin = Message::default();
    plugin.bytes(1, b"hparams");
    plugin.message(2, data); // content: HParamsPluginData, version 0
    let mut metadata = Message::default();
    metadata.message(1, &plugin);
    let mut dim = Message::default();
    dim.message(2, &Message::default()); // one dimension of size 0
    let mut tensor = Message::default();
    tensor.varint(1, 1); // DT_FLOAT
    tensor.message(2, &dim);
    let mut v = Message::default();
    v.bytes(1, tag.as_bytes());
    v.message(8, &tensor);
    v.message(9, &metadata);
    let mut summary = Message::default();
    summary.message(1, &v);
    summary
}

/// google.protobuf.Value.
fn protobuf_value(value: &HParamValue) -> Message {
    let mut v = Message::default();
    match value {
        HParamValue::Number(x) => v.fixed64(2, x.to_bits()),
        HParamValue::Text(s) => v.bytes(3, s.as_bytes()),
        HParamValue::Bool(b) => v.varint(4, *b as u64),
    }
    v
}

fn event_header(wall_time: f64, step: i64) -> Message {
    let mut event = Message::default();
    event.fixed64(1, wall_time.to_bits());
    if step != 0 {
        event.varint(2, step as u64);
    }
    event
}

fn wall_time() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// A protocol buffer message being encoded: fields appended in the order written.
#[derive(Default)]
struct Message(Vec<u8>);

impl Message {
    fn key(&mut self, field: u32, wire_type: u8) {
        self.raw_varint(((field as u64) << 3) | wire_type as u64);
    }
    fn raw_varint(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.0.push((v as u8) | 0x80);
            v >>= 7;
        }
        self.0.push(v as u8);
    }
    fn varint(&mut self, field: u32, v: u64) {
        self.key(field, 0);
        self.raw_varint(v);
    }
    fn fixed64(&mut self, field: u32, bits: u64) {
        self.key(field, 1);
        self.0.extend_from_slice(&bits.to_le_bytes());
    }
    fn fixed32(&mut self, field: u32, bits: u32) {
        self.key(field, 5);
        self.0.extend_from_slice(&bits.to_le_bytes());
    }
    fn bytes(&mut self, field: u32, bytes: &[u8]) {
        self.key(field, 2);
        self.raw_varint(bytes.len() as u64);
        self.0.extend_from_slice(bytes);
    }
    fn message(&mut self, field: u32, m: &Message) {
        self.bytes(field, &m.0);
    }
}

/// One TFRecord: the payload's length and payload, each followed by its masked CRC-32C.
fn record(payload: &[u8]) -> Vec<u8> {
    let len = (payload.len() as u64).to_le_bytes();
    let mut out = Vec::with_capacity(payload.len() + 16);
    out.extend_from_slice(&len);
    out.extend_from_slice(&masked_crc(&len).to_le_bytes());
    out.extend_from_slice(payload);
    out.extend_from_slice(&masked_crc(payload).to_le_bytes());
    out
}

fn masked_crc(bytes: &[u8]) -> u32 {
    let crc = crc32c(bytes);
    crc.rotate_right(15).wrapping_add(0xa282_ead8)
}

/// CRC-32C (Castagnoli), bit by bit: event files are small, and this keeps a dependency out.
fn crc32c(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= b as u32;
        for _ in 0..8 {
            crc = (crc >> 1) ^ (0x82f6_3b78 & (crc & 1).wrapping_neg());
        }
    }
    !crc
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32c_matches_the_standard_check_value() {
        assert_eq!(crc32c(b"123456789"), 0xe306_9283);
        assert_eq!(crc32c(b""), 0);
    }

    #[test]
    fn varints_and_records_are_framed_as_protobuf_and_tfrecord_say() {
        let mut m = Message::default();
        m.varint(2, 300);
        assert_eq!(m.0, [0x10, 0xac, 0x02]);
        let r = record(b"abc");
        assert_eq!(r.len(), 8 + 4 + 3 + 4);
        assert_eq!(&r[..8], &3u64.to_le_bytes());
        assert_eq!(&r[12..15], b"abc");
    }
}
