//! The write-ahead log: every acknowledged batch is on disk, fsynced, before its export call
//! returns.
//!
//! ## On disk
//! `wal/{segment:020}.wal` files, each a sequence of records:
//!
//! ```text
//! u32 payload length | u32 CRC-32 of the payload | payload
//! payload = u8 format | u64 sequence number | u8 signal | u8 tenant length | tenant | rows
//! rows, format 1 = LZ4 block (size-prefixed) of: u32 IPC metadata length | Arrow IPC
//!                  record-batch message | Arrow IPC body
//! rows, format 2 = i64 time received (ns since the epoch) | the OTLP request (protobuf)
//! ```
//!
//! A format-2 record keeps the request the rows were converted from, as the receiver got it
//! (after content decoding), instead of the rows: writing it costs a copy, where encoding the
//! rows costs as much as a tenth of the node's CPU. Replay turns it back into the same rows
//! with the [`RequestDecoder`] of [`WalConfig`], which runs the receivers' conversion on the
//! same bytes and receive time. Rows that are not a function of those alone (converted from
//! OTLP/JSON, or metrics some of which the series limit refused) are written in format 1.
//!
//! Sequence numbers grow by one per record across segments and restarts. The schema is not
//! written: it is the signal's table schema, pinned by the format version.
//!
//! ## Group commit
//! One writer thread owns the open segment. Appenders queue records; the writer takes every
//! record queued (waiting up to `sync_delay` for more when asked to), writes them with one
//! `write` and one `fdatasync`, hands each record to the `apply` callback *in sequence order*
//! (this is how records reach the write buffer), and only then answers the appenders. So the
//! buffer holds records in sequence order, which lets a flush state "every record of this table
//! up to sequence N is in Parquet" (the watermark kept in the catalog).
//!
//! ## Recovery
//! On start every segment is read in order. A record whose length runs past the end of the
//! file or whose checksum does not match ends its segment: the file is cut there, the cut is
//! counted and logged, and the node starts. Writing always resumes in a fresh segment. A
//! format-2 record whose request the decoder refuses (it was accepted when written, so only a
//! change of the conversion can do this) is logged, counted and skipped; the records after it
//! are intact and replayed. A format-2 record without a decoder stops the start.
//!
//! ## Deletion
//! A sealed segment is deleted once every record in it is older than the oldest record still
//! buffered anywhere, i.e. once its data is in Parquet and in the catalog.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use arrow::array::RecordBatch;
use arrow::buffer::Buffer;
use arrow::ipc::MetadataVersion;
use arrow::ipc::writer::{DictionaryTracker, IpcDataGenerator, IpcWriteContext, IpcWriteOptions};
use bytes::Bytes;
use parking_lot::Mutex;
use tokio::sync::{mpsc, oneshot};

use crate::schema::schema_for;
use crate::{Error, Result, Signal, TenantId};

/// Format byte of a record holding rows (Arrow IPC); bump when the layout or a table schema
/// changes.
const ROWS_FORMAT: u8 = 1;
/// Format byte of a record holding the OTLP request the rows were converted from.
const REQUEST_FORMAT: u8 = 2;
/// Bytes before the payload: length and checksum.
const FRAME_HEADER: usize = 8;
/// Refuse to read a record claiming more than this (a corrupt length).
const MAX_RECORD_BYTES: usize = 1 << 30;

/// Settings of the WAL.
#[derive(Debug, Clone)]
pub struct WalConfig {
    /// Directory of the segment files.
    pub dir: PathBuf,
    /// A segment is sealed and a new one started once it holds this many bytes.
    pub segment_bytes: u64,
    /// Appends are refused (the node answers 503) while the segments hold this many bytes.
    pub max_bytes: u64,
    /// How long the writer waits for more records before an fsync (0: sync at once, grouping
    /// only what queued up during the previous sync).
    pub sync_delay: Duration,
    /// Turns the requests of format-2 records back into rows. Without one, every record is
    /// written in format 1, and a WAL holding format-2 records cannot be replayed.
    pub decoder: Option<RequestDecoder>,
}

impl WalConfig {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self {
            dir: dir.into(),
            segment_bytes: 64 * 1024 * 1024,
            max_bytes: 8 * 1024 * 1024 * 1024,
            sync_delay: Duration::ZERO,
            decoder: None,
        }
    }
}

/// The conversion a format-2 record is replayed with: from a signal's OTLP request
/// (protobuf) and the time it was received to the rows written from it, `None` when it had
/// none. It must be the conversion the receivers ran when the record was written.
#[derive(Clone)]
pub struct RequestDecoder(Arc<DecodeFn>);

type DecodeFn =
    dyn Fn(Signal, &[u8], i64) -> std::result::Result<Option<RecordBatch>, String> + Send + Sync;

impl RequestDecoder {
    pub fn new(
        decode: impl Fn(Signal, &[u8], i64) -> std::result::Result<Option<RecordBatch>, String>
        + Send
        + Sync
        + 'static,
    ) -> Self {
        Self(Arc::new(decode))
    }

    pub fn decode(
        &self,
        signal: Signal,
        request: &[u8],
        received_ns: i64,
    ) -> std::result::Result<Option<RecordBatch>, String> {
        (self.0)(signal, request, received_ns)
    }
}

impl std::fmt::Debug for RequestDecoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RequestDecoder")
    }
}

/// The OTLP request a batch was converted from: what a format-2 record keeps instead of the
/// batch.
#[derive(Debug, Clone)]
pub struct SourceRequest {
    /// When the receiver got it (ns since the epoch), as given to the conversion.
    pub received_ns: i64,
    /// The request's protobuf bytes, after content decoding.
    pub protobuf: Bytes,
}

/// A record read back from, or just written to, the WAL.
#[derive(Debug, Clone)]
pub struct WalRecord {
    pub seq: u64,
    pub tenant: TenantId,
    pub signal: Signal,
    pub batch: RecordBatch,
}

/// What recovery found.
#[derive(Debug, Default)]
pub struct Replay {
    /// Records in sequence order (all of them; the caller skips what is already in Parquet).
    pub records: Vec<WalRecord>,
    /// The highest sequence number seen, if any.
    pub last_seq: Option<u64>,
    /// Segments cut at a torn or corrupt record.
    pub corrupt_tails: u64,
    /// Bytes cut off those segments.
    pub bytes_cut: u64,
    /// Format-2 records whose request the decoder refused (skipped).
    pub refused_records: u64,
    /// The segment files found, oldest first, to hand to [`Wal::start`].
    pub segments: Vec<Segment>,
}

/// Counters of the WAL, for `/metrics`.
#[derive(Debug, Default)]
pub struct WalStats {
    pub records: AtomicU64,
    pub bytes: AtomicU64,
    pub syncs: AtomicU64,
    pub segments_deleted: AtomicU64,
    pub corrupt_tails: AtomicU64,
    pub replayed_records: AtomicU64,
    /// Request records found at start that the decoder refused (logged and skipped).
    pub refused_records: AtomicU64,
    /// Bytes currently held by segment files.
    pub disk_bytes: AtomicU64,
}

impl WalStats {
    /// Counts what the replay at start found: `replayed` records re-buffered (those not yet
    /// in Parquet), torn tails cut and request records refused.
    pub fn count_replay(&self, replay: &Replay, replayed: u64) {
        self.replayed_records.fetch_add(replayed, Ordering::Relaxed);
        self.corrupt_tails
            .fetch_add(replay.corrupt_tails, Ordering::Relaxed);
        self.refused_records
            .fetch_add(replay.refused_records, Ordering::Relaxed);
    }
}

/// A segment file.
#[derive(Debug)]
pub struct Segment {
    id: u64,
    path: PathBuf,
    bytes: u64,
    /// Highest sequence number in the segment (`None` while empty).
    max_seq: Option<u64>,
}

/// Called by the writer for every durable record, in sequence order.
pub type ApplyFn = Box<dyn Fn(WalRecord) + Send + 'static>;

struct Append {
    tenant: TenantId,
    signal: Signal,
    batch: RecordBatch,
    /// The payload without its sequence number (the writer fills it in), up to `request`.
    payload: Vec<u8>,
    /// The rest of a format-2 payload: the request, written as it is (empty in format 1).
    request: Bytes,
    done: oneshot::Sender<Result<u64>>,
    /// Dropped once the record has been applied or has failed, whatever happens to the
    /// appender meanwhile (the buffer's memory reservation of the record).
    hold: Box<dyn Send>,
}

/// The write-ahead log of one node.
pub struct Wal {
    /// `None` once closed.
    tx: parking_lot::RwLock<Option<mpsc::Sender<Append>>>,
    segments: Arc<Mutex<VecDeque<Segment>>>,
    stats: Arc<WalStats>,
    config: WalConfig,
    writer: Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl std::fmt::Debug for Wal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Wal")
            .field("dir", &self.config.dir)
            .finish()
    }
}

/// Offset of the sequence number inside the payload.
const SEQ_OFFSET: usize = 1;

fn signal_code(signal: Signal) -> u8 {
    match signal {
        Signal::Spans => 1,
        Signal::Logs => 2,
        Signal::Metrics => 3,
    }
}

fn signal_from_code(code: u8) -> Option<Signal> {
    match code {
        1 => Some(Signal::Spans),
        2 => Some(Signal::Logs),
        3 => Some(Signal::Metrics),
        _ => None,
    }
}

/// Encodes a batch as a WAL payload with a zero sequence number.
///
/// The Arrow IPC message (metadata and body) is LZ4-compressed as one block rather than
/// buffer by buffer: a small request has dozens of tiny buffers, and per-buffer framing
/// would cost more than the data.
pub fn encode_payload(tenant: &TenantId, signal: Signal, batch: &RecordBatch) -> Result<Vec<u8>> {
    // Kept in the table's layout, which replay decodes with its schema.
    let batch = &crate::resources::to_table(batch)?;
    thread_local! {
        // Kept per thread between records: the IPC body buffer is then allocated at the
        // size of the previous record's instead of growing (and copying) from empty, and
        // the uncompressed message is assembled in memory that is already mapped.
        static SCRATCH: RefCell<(IpcWriteContext, Vec<u8>)> =
            RefCell::new((scratch_context(), Vec::new()));
    }
    /// Records up to this size leave their buffers to the next one on the thread.
    const KEPT_SCRATCH_BYTES: usize = 4 << 20;
    fn scratch_context() -> IpcWriteContext {
        let mut context = IpcWriteContext::default();
        context.set_reserve_scratch(true);
        context
    }
    SCRATCH.with_borrow_mut(|(context, message)| {
        let options = IpcWriteOptions::default();
        let mut tracker = DictionaryTracker::new(false);
        let (_dictionaries, encoded) =
            IpcDataGenerator::default().encode(batch, &mut tracker, &options, context)?;
        message.clear();
        message.extend_from_slice(&(encoded.ipc_message.len() as u32).to_le_bytes());
        message.extend_from_slice(&encoded.ipc_message);
        message.extend_from_slice(&encoded.arrow_data);
        let compressed = lz4_flex::block::compress_prepend_size(message);
        let mut payload = payload_head(ROWS_FORMAT, tenant, signal, compressed.len());
        payload.extend_from_slice(&compressed);
        // Only the buffers of ordinary records are kept: a large one would stay allocated
        // on its thread.
        if message.len() > KEPT_SCRATCH_BYTES {
            *context = scratch_context();
            *message = Vec::new();
        }
        Ok(payload)
    })
}

/// The start of a payload, up to its rows, with room for `rows` more bytes.
fn payload_head(format: u8, tenant: &TenantId, signal: Signal, rows: usize) -> Vec<u8> {
    let tenant = tenant.as_str().as_bytes();
    let mut payload = Vec::with_capacity(11 + tenant.len() + rows);
    payload.push(format);
    payload.extend_from_slice(&0u64.to_le_bytes());
    payload.push(signal_code(signal));
    payload.push(tenant.len() as u8);
    payload.extend_from_slice(tenant);
    payload
}

/// The payload of a format-2 record up to its request, with a zero sequence number.
pub fn encode_request_head(tenant: &TenantId, signal: Signal, received_ns: i64) -> Vec<u8> {
    let mut payload = payload_head(REQUEST_FORMAT, tenant, signal, 8);
    payload.extend_from_slice(&received_ns.to_le_bytes());
    payload
}

/// A payload read back: rows, or the request they were converted from.
#[derive(Debug)]
pub enum Payload<'a> {
    Rows(WalRecord),
    Request {
        seq: u64,
        tenant: TenantId,
        signal: Signal,
        received_ns: i64,
        protobuf: &'a [u8],
    },
}

/// Reads a payload written by [`encode_payload`], or by [`encode_request_head`] followed by
/// the request.
pub fn decode_payload(payload: &[u8]) -> std::result::Result<Payload<'_>, String> {
    fn take<'a>(r: &mut &'a [u8], n: usize) -> std::result::Result<&'a [u8], String> {
        if r.len() < n {
            return Err("record is shorter than its fields".into());
        }
        let (head, tail) = r.split_at(n);
        *r = tail;
        Ok(head)
    }
    let mut r = payload;
    let format = take(&mut r, 1)?[0];
    if format != ROWS_FORMAT && format != REQUEST_FORMAT {
        return Err(format!("unknown WAL record format {format}"));
    }
    let seq = u64::from_le_bytes(take(&mut r, 8)?.try_into().expect("8 bytes"));
    let signal = signal_from_code(take(&mut r, 1)?[0]).ok_or("unknown signal code")?;
    let tenant_len = take(&mut r, 1)?[0] as usize;
    let tenant = std::str::from_utf8(take(&mut r, tenant_len)?)
        .ok()
        .and_then(|t| TenantId::new(t).ok())
        .ok_or("invalid tenant id")?;
    if format == REQUEST_FORMAT {
        let received_ns = i64::from_le_bytes(take(&mut r, 8)?.try_into().expect("8 bytes"));
        return Ok(Payload::Request {
            seq,
            tenant,
            signal,
            received_ns,
            protobuf: r,
        });
    }
    // The size prefix is checked against the limit before anything is allocated for it.
    if r.len() < 4 {
        return Err("record is shorter than its fields".into());
    }
    let size = u32::from_le_bytes(r[..4].try_into().expect("4 bytes")) as usize;
    if size > MAX_RECORD_BYTES {
        return Err(format!("record claims {size} bytes uncompressed"));
    }
    let message = lz4_flex::block::decompress_size_prepended(r).map_err(|e| format!("LZ4: {e}"))?;
    let mut m = message.as_slice();
    let meta_len = u32::from_le_bytes(take(&mut m, 4)?.try_into().expect("4 bytes")) as usize;
    let meta = take(&mut m, meta_len)?;
    let ipc = arrow::ipc::root_as_message(meta).map_err(|e| format!("IPC message: {e}"))?;
    let header = ipc
        .header_as_record_batch()
        .ok_or("IPC message is not a record batch")?;
    let body = Buffer::from(m.to_vec());
    let batch = arrow::ipc::reader::read_record_batch(
        &body,
        header,
        schema_for(signal),
        &Default::default(),
        None,
        &MetadataVersion::V5,
    )
    .map_err(|e| format!("IPC body: {e}"))?;
    Ok(Payload::Rows(WalRecord {
        seq,
        tenant,
        signal,
        batch,
    }))
}

fn segment_path(dir: &Path, id: u64) -> PathBuf {
    dir.join(format!("{id:020}.wal"))
}

fn list_segments(dir: &Path) -> io::Result<Vec<(u64, PathBuf)>> {
    let mut segments = Vec::new();
    for entry in fs::read_dir(dir)? {
        let path = entry?.path();
        let id = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_suffix(".wal"))
            .and_then(|n| n.parse::<u64>().ok());
        if let Some(id) = id {
            segments.push((id, path));
        }
    }
    segments.sort();
    Ok(segments)
}

/// Reads one segment; cuts it at the first torn or corrupt record.
fn read_segment(
    path: &Path,
    decoder: Option<&RequestDecoder>,
    replay: &mut Replay,
) -> io::Result<(Vec<WalRecord>, u64)> {
    let mut data = Vec::new();
    File::open(path)?.read_to_end(&mut data)?;
    let mut records = Vec::new();
    let mut offset = 0usize;
    let mut problem = None;
    while offset < data.len() {
        if data.len() - offset < FRAME_HEADER {
            problem = Some("torn record header");
            break;
        }
        let len =
            u32::from_le_bytes(data[offset..offset + 4].try_into().expect("4 bytes")) as usize;
        let crc = u32::from_le_bytes(data[offset + 4..offset + 8].try_into().expect("4 bytes"));
        let start = offset + FRAME_HEADER;
        if len > MAX_RECORD_BYTES || data.len() - start < len {
            problem = Some("torn record");
            break;
        }
        let payload = &data[start..start + len];
        if crc32fast::hash(payload) != crc {
            problem = Some("checksum mismatch");
            break;
        }
        match decode_payload(payload) {
            Ok(Payload::Rows(record)) => records.push(record),
            Ok(Payload::Request {
                seq,
                tenant,
                signal,
                received_ns,
                protobuf,
            }) => {
                let Some(decoder) = decoder else {
                    return Err(io::Error::other(format!(
                        "{}: record {seq} holds an OTLP request, and no request decoder is \
                         configured to replay it",
                        path.display()
                    )));
                };
                match decoder.decode(signal, protobuf, received_ns) {
                    Ok(Some(batch)) => records.push(WalRecord {
                        seq,
                        tenant,
                        signal,
                        batch,
                    }),
                    Ok(None) => {}
                    Err(e) => {
                        tracing::error!(
                            path = %path.display(), seq, %tenant, %signal, error = %e,
                            "WAL record's request is refused by the conversion; skipping it"
                        );
                        replay.refused_records += 1;
                    }
                }
            }
            Err(e) => {
                tracing::error!(path = %path.display(), offset, error = %e, "undecodable WAL record");
                problem = Some("undecodable record");
                break;
            }
        }
        offset = start + len;
    }
    if let Some(problem) = problem {
        let cut = (data.len() - offset) as u64;
        tracing::warn!(
            path = %path.display(), offset, bytes_cut = cut, problem,
            "WAL segment has a torn or corrupt tail; cutting it"
        );
        let file = OpenOptions::new().write(true).open(path)?;
        file.set_len(offset as u64)?;
        file.sync_all()?;
        replay.corrupt_tails += 1;
        replay.bytes_cut += cut;
    }
    Ok((records, offset as u64))
}

impl Wal {
    /// Reads every segment in `config.dir` (creating the directory if needed).
    pub fn replay(config: &WalConfig) -> Result<Replay> {
        fs::create_dir_all(&config.dir)?;
        let mut replay = Replay::default();
        for (id, path) in list_segments(&config.dir)? {
            let (records, bytes) = read_segment(&path, config.decoder.as_ref(), &mut replay)?;
            let max_seq = records.last().map(|r| r.seq);
            if let Some(seq) = max_seq {
                replay.last_seq = Some(replay.last_seq.map_or(seq, |s| s.max(seq)));
            }
            replay.records.extend(records);
            replay.segments.push(Segment {
                id,
                path,
                bytes,
                max_seq,
            });
        }
        Ok(replay)
    }

    /// Starts the writer on a fresh segment after `existing` ones, numbering records from
    /// `next_seq`.
    pub fn start(
        config: WalConfig,
        existing: Vec<Segment>,
        next_seq: u64,
        apply: ApplyFn,
    ) -> Result<Arc<Wal>> {
        let stats = Arc::new(WalStats::default());
        let next_id = existing.last().map_or(1, |s| s.id + 1);
        let mut segments: VecDeque<Segment> = existing.into_iter().collect();
        let (file, path) = open_segment(&config.dir, next_id)?;
        segments.push_back(Segment {
            id: next_id,
            path,
            bytes: 0,
            max_seq: None,
        });
        stats
            .disk_bytes
            .store(segments.iter().map(|s| s.bytes).sum(), Ordering::Relaxed);
        let segments = Arc::new(Mutex::new(segments));
        let (tx, rx) = mpsc::channel(4096);
        let writer = Writer {
            config: config.clone(),
            file,
            segment_id: next_id,
            next_seq,
            segments: segments.clone(),
            stats: stats.clone(),
            apply,
        };
        let handle = std::thread::Builder::new()
            .name("strata-wal".into())
            .spawn(move || writer.run(rx))?;
        Ok(Arc::new(Wal {
            tx: parking_lot::RwLock::new(Some(tx)),
            segments,
            stats,
            config,
            writer: Mutex::new(Some(handle)),
        }))
    }

    pub fn stats(&self) -> &WalStats {
        &self.stats
    }

    /// Appends a batch; resolves once it is fsynced and applied, with its sequence number.
    pub async fn append(
        &self,
        tenant: TenantId,
        signal: Signal,
        batch: RecordBatch,
    ) -> Result<u64> {
        self.append_holding(tenant, signal, batch, None, ()).await
    }

    /// [`Wal::append`], keeping `hold` alive until the record has been applied (after the
    /// `apply` callback returned) or has failed, even if this future is dropped before then.
    /// With `source`, the batch's rows as converted from it, and a decoder configured, the
    /// record keeps the request instead of the rows (format 2).
    pub async fn append_holding(
        &self,
        tenant: TenantId,
        signal: Signal,
        batch: RecordBatch,
        source: Option<SourceRequest>,
        hold: impl Send + 'static,
    ) -> Result<u64> {
        if self.stats.disk_bytes.load(Ordering::Relaxed) >= self.config.max_bytes {
            return Err(Error::WalFull);
        }
        let (payload, request) = match source {
            // (A request near the record size limit keeps the rows form, as before.)
            Some(source)
                if self.config.decoder.is_some()
                    && source.protobuf.len() < MAX_RECORD_BYTES / 2 =>
            {
                (
                    encode_request_head(&tenant, signal, source.received_ns),
                    source.protobuf,
                )
            }
            _ => (encode_payload(&tenant, signal, &batch)?, Bytes::new()),
        };
        let (done, rx) = oneshot::channel();
        let tx = self.tx.read().clone().ok_or(Error::ShuttingDown)?;
        tx.send(Append {
            tenant,
            signal,
            batch,
            payload,
            request,
            done,
            hold: Box::new(hold),
        })
        .await
        .map_err(|_| Error::ShuttingDown)?;
        rx.await.map_err(|_| Error::ShuttingDown)?
    }

    /// Deletes sealed segments whose records are all below `oldest_buffered` (every sealed
    /// segment when nothing is buffered).
    pub fn release(&self, oldest_buffered: Option<u64>) {
        let mut segments = self.segments.lock();
        while segments.len() > 1 {
            let front = &segments[0];
            let done = match (front.max_seq, oldest_buffered) {
                (None, _) => true,
                (Some(_), None) => true,
                (Some(max), Some(oldest)) => max < oldest,
            };
            if !done {
                break;
            }
            let segment = segments.pop_front().expect("len > 1");
            match fs::remove_file(&segment.path) {
                Ok(()) => {
                    self.stats.segments_deleted.fetch_add(1, Ordering::Relaxed);
                    self.stats
                        .disk_bytes
                        .fetch_sub(segment.bytes, Ordering::Relaxed);
                    tracing::debug!(segment = segment.id, "deleted WAL segment");
                }
                Err(e) => {
                    tracing::warn!(segment = segment.id, error = %e, "cannot delete WAL segment");
                    segments.push_front(segment);
                    break;
                }
            }
        }
    }

    /// Stops the writer after it has answered every queued append. Blocks until then.
    pub fn close(&self) {
        drop(self.tx.write().take());
        if let Some(handle) = self.writer.lock().take() {
            let _ = handle.join();
        }
    }
}

fn open_segment(dir: &Path, id: u64) -> io::Result<(File, PathBuf)> {
    let path = segment_path(dir, id);
    let file = OpenOptions::new().create(true).append(true).open(&path)?;
    // Make the new directory entry durable too.
    File::open(dir)?.sync_all()?;
    Ok((file, path))
}

struct Writer {
    config: WalConfig,
    file: File,
    segment_id: u64,
    next_seq: u64,
    segments: Arc<Mutex<VecDeque<Segment>>>,
    stats: Arc<WalStats>,
    apply: ApplyFn,
}

impl Writer {
    fn run(mut self, mut rx: mpsc::Receiver<Append>) {
        let mut group: Vec<Append> = Vec::new();
        let mut buf: Vec<u8> = Vec::new();
        while let Some(first) = rx.blocking_recv() {
            group.push(first);
            let deadline = Instant::now() + self.config.sync_delay;
            loop {
                match rx.try_recv() {
                    Ok(next) => group.push(next),
                    Err(mpsc::error::TryRecvError::Empty) => {
                        if Instant::now() >= deadline {
                            break;
                        }
                        std::thread::sleep(Duration::from_micros(100));
                    }
                    Err(mpsc::error::TryRecvError::Disconnected) => break,
                }
            }
            self.commit(&mut group, &mut buf);
        }
        tracing::debug!("WAL writer stopped");
    }

    /// Writes and syncs a group, applies its records in order, answers the appenders.
    fn commit(&mut self, group: &mut Vec<Append>, buf: &mut Vec<u8>) {
        buf.clear();
        let first_seq = self.next_seq;
        for (i, append) in group.iter_mut().enumerate() {
            let seq = first_seq + i as u64;
            append.payload[SEQ_OFFSET..SEQ_OFFSET + 8].copy_from_slice(&seq.to_le_bytes());
            let len = append.payload.len() + append.request.len();
            let mut crc = crc32fast::Hasher::new();
            crc.update(&append.payload);
            crc.update(&append.request);
            buf.extend_from_slice(&(len as u32).to_le_bytes());
            buf.extend_from_slice(&crc.finalize().to_le_bytes());
            buf.extend_from_slice(&append.payload);
            buf.extend_from_slice(&append.request);
        }
        let written = self
            .file
            .write_all(buf)
            .and_then(|()| self.file.sync_data());
        // Numbers of a failed group are burned, never reused: its records may have reached
        // the disk, and recovery must not see two records with one number.
        self.next_seq += group.len() as u64;
        if let Err(e) = written {
            tracing::error!(error = %e, records = group.len(), "WAL write failed");
            // The segment's tail is now unknown: seal it where it was and start a new one;
            // recovery cuts whatever partial record it holds.
            self.roll_segment();
            let full = e.raw_os_error() == Some(28); // ENOSPC
            for append in group.drain(..) {
                let err = if full {
                    Error::WalFull
                } else {
                    Error::Io(io::Error::new(e.kind(), e.to_string()))
                };
                let _ = append.done.send(Err(err));
            }
            return;
        }
        let last_seq = self.next_seq - 1;
        self.stats.syncs.fetch_add(1, Ordering::Relaxed);
        self.stats
            .records
            .fetch_add(group.len() as u64, Ordering::Relaxed);
        self.stats
            .bytes
            .fetch_add(buf.len() as u64, Ordering::Relaxed);
        self.stats
            .disk_bytes
            .fetch_add(buf.len() as u64, Ordering::Relaxed);
        let segment_full = {
            let mut segments = self.segments.lock();
            let current = segments.back_mut().expect("current segment");
            current.bytes += buf.len() as u64;
            current.max_seq = Some(last_seq);
            current.bytes >= self.config.segment_bytes
        };
        // Order matters: the records reach the buffer while their segment is still the open
        // one (never deleted), then the segment may be sealed (deletable once nothing older is
        // buffered), then the appenders hear back.
        let mut answers = Vec::with_capacity(group.len());
        for (i, append) in group.drain(..).enumerate() {
            let seq = first_seq + i as u64;
            (self.apply)(WalRecord {
                seq,
                tenant: append.tenant,
                signal: append.signal,
                batch: append.batch,
            });
            // Now that the record is in the buffer, what was held for it may go.
            drop(append.hold);
            answers.push((append.done, seq));
        }
        if segment_full {
            self.roll_segment();
        }
        for (done, seq) in answers {
            let _ = done.send(Ok(seq));
        }
    }

    fn roll_segment(&mut self) {
        let id = self.segment_id + 1;
        match open_segment(&self.config.dir, id) {
            Ok((file, path)) => {
                self.file = file;
                self.segment_id = id;
                self.segments.lock().push_back(Segment {
                    id,
                    path,
                    bytes: 0,
                    max_seq: None,
                });
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot open a new WAL segment; keeping the old one");
            }
        }
    }
}

#[cfg(test)]
mod tests;
