//! WAL: round trips, group commit, torn and corrupt tails, segment lifecycle.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use arrow::array::{Array, AsArray, RecordBatch};
use parking_lot::Mutex;

use super::*;
use crate::schema::logs_schema;

/// A one-row `logs` batch whose `severity_text` is `text`.
fn batch(text: &str) -> RecordBatch {
    let schema = logs_schema();
    let columns = schema
        .fields()
        .iter()
        .map(|f| {
            if f.name() == "severity_text" {
                Arc::new(arrow::array::StringArray::from(vec![text])) as _
            } else if f.name() == "time" || f.name() == "observed_time" {
                Arc::new(
                    arrow::array::TimestampNanosecondArray::from(vec![1_000]).with_timezone("UTC"),
                ) as _
            } else {
                arrow::array::new_null_array(f.data_type(), 1)
            }
        })
        .collect::<Vec<_>>();
    // Non-nullable map columns need an empty map, not a null.
    let columns = columns
        .into_iter()
        .zip(schema.fields())
        .map(|(c, f)| {
            if matches!(f.data_type(), arrow::datatypes::DataType::Map(..)) {
                let mut b = arrow::array::MapBuilder::new(
                    None,
                    arrow::array::StringBuilder::new(),
                    arrow::array::StringBuilder::new(),
                )
                .with_values_field(Arc::new(arrow::datatypes::Field::new(
                    "values",
                    arrow::datatypes::DataType::Utf8,
                    true,
                )));
                b.append(true).unwrap();
                Arc::new(b.finish()) as _
            } else if !f.is_nullable() && c.null_count() > 0 {
                match f.data_type() {
                    arrow::datatypes::DataType::Utf8 => {
                        Arc::new(arrow::array::StringArray::from(vec![""])) as _
                    }
                    arrow::datatypes::DataType::Int32 => {
                        Arc::new(arrow::array::Int32Array::from(vec![0])) as _
                    }
                    arrow::datatypes::DataType::UInt32 => {
                        Arc::new(arrow::array::UInt32Array::from(vec![0])) as _
                    }
                    other => panic!("no filler for {other}"),
                }
            } else {
                c
            }
        })
        .collect();
    RecordBatch::try_new(schema, columns).unwrap()
}

fn text_of(batch: &RecordBatch) -> String {
    batch
        .column_by_name("severity_text")
        .unwrap()
        .as_string::<i32>()
        .value(0)
        .to_string()
}

fn tenant() -> TenantId {
    TenantId::new("t1").unwrap()
}

type Applied = Arc<Mutex<Vec<(u64, String)>>>;

fn start(config: &WalConfig) -> (Arc<Wal>, Applied, Replay) {
    let mut replay = Wal::replay(config).unwrap();
    let next = replay.last_seq.map_or(1, |s| s + 1);
    let segments = std::mem::take(&mut replay.segments);
    let applied: Applied = Arc::default();
    let sink = applied.clone();
    let wal = Wal::start(
        config.clone(),
        segments,
        next,
        Box::new(move |r: WalRecord| sink.lock().push((r.seq, text_of(&r.batch)))),
    )
    .unwrap();
    (wal, applied, replay)
}

fn replayed(replay: &Replay) -> Vec<(u64, String)> {
    replay
        .records
        .iter()
        .map(|r| (r.seq, text_of(&r.batch)))
        .collect()
}

#[test]
fn payloads_round_trip() {
    let b = batch("hello");
    let mut payload = encode_payload(&tenant(), Signal::Logs, &b).unwrap();
    payload[SEQ_OFFSET..SEQ_OFFSET + 8].copy_from_slice(&42u64.to_le_bytes());
    let Payload::Rows(record) = decode_payload(&payload).unwrap() else {
        panic!("a rows payload reads back as rows");
    };
    assert_eq!(record.seq, 42);
    assert_eq!(record.tenant, tenant());
    assert_eq!(record.signal, Signal::Logs);
    assert_eq!(record.batch, b);
    assert!(decode_payload(&payload[..10]).is_err());
    let mut bad_version = payload.clone();
    bad_version[0] = 99;
    assert!(decode_payload(&bad_version).unwrap_err().contains("format"));
}

#[test]
fn request_payloads_round_trip() {
    let mut payload = encode_request_head(&tenant(), Signal::Spans, -7);
    payload[SEQ_OFFSET..SEQ_OFFSET + 8].copy_from_slice(&9u64.to_le_bytes());
    let head = payload.len();
    payload.extend_from_slice(b"request bytes");
    let Payload::Request {
        seq,
        tenant: t,
        signal,
        received_ns,
        protobuf,
    } = decode_payload(&payload).unwrap()
    else {
        panic!("a request payload reads back as a request");
    };
    assert_eq!(
        (seq, t, signal, received_ns, protobuf),
        (9, tenant(), Signal::Spans, -7, &b"request bytes"[..])
    );
    // An empty request is a request; a head cut short is not.
    assert!(matches!(
        decode_payload(&payload[..head]),
        Ok(Payload::Request { protobuf: [], .. })
    ));
    assert!(decode_payload(&payload[..head - 1]).is_err());
}

/// A decoder for tests: the request is `severity_text` of a one-row batch; `refuse` is
/// refused, `none` has no rows. Counts its calls.
fn text_decoder(calls: Arc<AtomicUsize>) -> RequestDecoder {
    RequestDecoder::new(move |signal, request, received_ns| {
        calls.fetch_add(1, Ordering::Relaxed);
        assert_eq!((signal, received_ns), (Signal::Logs, 5));
        match std::str::from_utf8(request).unwrap() {
            "refuse" => Err("refused".into()),
            "none" => Ok(None),
            text => Ok(Some(batch(text))),
        }
    })
}

fn source(text: &str) -> Option<SourceRequest> {
    Some(SourceRequest {
        received_ns: 5,
        protobuf: Bytes::copy_from_slice(text.as_bytes()),
    })
}

/// Appends rows converted from a request with the text of each (rows without one for
/// `None`), and closes the WAL.
async fn append_sources(config: &WalConfig, texts: &[(&str, bool)]) {
    let (wal, applied, _) = start(config);
    for (text, from_request) in texts {
        let source = if *from_request { source(text) } else { None };
        wal.append_holding(tenant(), Signal::Logs, batch(text), source, ())
            .await
            .unwrap();
    }
    // What was applied is the batch given, whatever the record keeps.
    let texts: Vec<String> = texts.iter().map(|(t, _)| t.to_string()).collect();
    assert_eq!(
        applied
            .lock()
            .iter()
            .map(|(_, t)| t.clone())
            .collect::<Vec<_>>(),
        texts
    );
    wal.close();
}

#[tokio::test]
async fn request_records_are_replayed_through_the_decoder() {
    let dir = tempfile::tempdir().unwrap();
    let calls = Arc::new(AtomicUsize::new(0));
    let mut config = WalConfig::new(dir.path().join("wal"));
    config.decoder = Some(text_decoder(calls.clone()));
    append_sources(&config, &[("a", true), ("b", false), ("c", true)]).await;
    // The requests are on disk as they were given, after their receive time.
    let data = fs::read(only_segment_with_data(&config.dir)).unwrap();
    let kept = |request: &[u8]| {
        let mut field = 5i64.to_le_bytes().to_vec();
        field.extend_from_slice(request);
        data.windows(field.len()).any(|w| w == field)
    };
    assert!(kept(b"a") && kept(b"c") && !kept(b"b"));
    let (_, _, replay) = start(&config);
    assert_eq!(
        replayed(&replay),
        vec![(1, "a".into()), (2, "b".into()), (3, "c".into())]
    );
    assert_eq!(calls.load(Ordering::Relaxed), 2, "a and c were requests");
    assert_eq!(replay.refused_records, 0);
}

#[tokio::test]
async fn without_a_decoder_records_keep_their_rows() {
    let dir = tempfile::tempdir().unwrap();
    let config = WalConfig::new(dir.path().join("wal"));
    append_sources(&config, &[("a", true), ("b", true)]).await;
    let (_, _, replay) = start(&config);
    assert_eq!(replayed(&replay), vec![(1, "a".into()), (2, "b".into())]);
}

#[tokio::test]
async fn request_records_without_a_decoder_stop_the_replay() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = WalConfig::new(dir.path().join("wal"));
    config.decoder = Some(text_decoder(Arc::default()));
    append_sources(&config, &[("a", true)]).await;
    config.decoder = None;
    let error = Wal::replay(&config).unwrap_err().to_string();
    assert!(error.contains("no request decoder"), "{error}");
    // Nothing was cut: with the decoder back, the record is there.
    config.decoder = Some(text_decoder(Arc::default()));
    assert_eq!(
        replayed(&Wal::replay(&config).unwrap()),
        vec![(1, "a".into())]
    );
}

#[tokio::test]
async fn refused_requests_are_skipped_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = WalConfig::new(dir.path().join("wal"));
    config.decoder = Some(text_decoder(Arc::default()));
    append_sources(
        &config,
        &[("a", true), ("refuse", true), ("none", true), ("d", true)],
    )
    .await;
    let (wal, _, replay) = start(&config);
    // The records after the refused one are replayed; numbering goes on after all four.
    assert_eq!(replayed(&replay), vec![(1, "a".into()), (4, "d".into())]);
    assert_eq!((replay.refused_records, replay.corrupt_tails), (1, 0));
    assert_eq!(
        wal.append(tenant(), Signal::Logs, batch("e"))
            .await
            .unwrap(),
        5
    );
}

#[tokio::test]
async fn appends_are_applied_in_order_and_replayed_after_restart() {
    let dir = tempfile::tempdir().unwrap();
    let config = WalConfig::new(dir.path().join("wal"));
    let (wal, applied, replay) = start(&config);
    assert!(replay.records.is_empty());
    for i in 0..5 {
        let seq = wal
            .append(tenant(), Signal::Logs, batch(&format!("r{i}")))
            .await
            .unwrap();
        assert_eq!(seq, i + 1);
    }
    let expected: Vec<_> = (0..5).map(|i| (i + 1, format!("r{i}"))).collect();
    assert_eq!(*applied.lock(), expected);
    wal.close();
    assert!(matches!(
        wal.append(tenant(), Signal::Logs, batch("late")).await,
        Err(Error::ShuttingDown)
    ));

    let (wal, _applied, replay) = start(&config);
    assert_eq!(replayed(&replay), expected);
    assert_eq!(replay.corrupt_tails, 0);
    // Numbering continues after a restart.
    assert_eq!(
        wal.append(tenant(), Signal::Logs, batch("r5"))
            .await
            .unwrap(),
        6
    );
}

#[tokio::test]
async fn concurrent_appends_share_fsyncs() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = WalConfig::new(dir.path().join("wal"));
    // A generous window so that every append below joins the first group.
    config.sync_delay = Duration::from_millis(300);
    let (wal, applied, _) = start(&config);
    let tasks: Vec<_> = (0..64)
        .map(|i| {
            let wal = wal.clone();
            tokio::spawn(async move {
                wal.append(tenant(), Signal::Logs, batch(&format!("c{i}")))
                    .await
            })
        })
        .collect();
    let mut seqs = Vec::new();
    for t in tasks {
        seqs.push(t.await.unwrap().unwrap());
    }
    seqs.sort();
    assert_eq!(seqs, (1..=64).collect::<Vec<_>>());
    let syncs = wal.stats().syncs.load(Ordering::Relaxed);
    assert!(syncs < 64, "64 appends took {syncs} fsyncs");
    // Applied strictly in sequence order, whatever order the appends were queued in.
    let order: Vec<u64> = applied.lock().iter().map(|(s, _)| *s).collect();
    assert_eq!(order, (1..=64).collect::<Vec<_>>());
}

fn only_segment_with_data(dir: &Path) -> PathBuf {
    let mut with_data: Vec<_> = list_segments(dir)
        .unwrap()
        .into_iter()
        .map(|(_, p)| p)
        .filter(|p| fs::metadata(p).unwrap().len() > 0)
        .collect();
    assert_eq!(with_data.len(), 1);
    with_data.pop().unwrap()
}

async fn write_three(config: &WalConfig) {
    let (wal, _, _) = start(config);
    for i in 0..3 {
        wal.append(tenant(), Signal::Logs, batch(&format!("r{i}")))
            .await
            .unwrap();
    }
    wal.close();
}

#[tokio::test]
async fn a_truncated_tail_is_cut_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let config = WalConfig::new(dir.path().join("wal"));
    write_three(&config).await;
    let path = only_segment_with_data(&config.dir);
    let len = fs::metadata(&path).unwrap().len();
    // A crash in the middle of the last write.
    OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(len - 7)
        .unwrap();
    let (wal, _, replay) = start(&config);
    assert_eq!(replayed(&replay), vec![(1, "r0".into()), (2, "r1".into())]);
    assert_eq!(replay.corrupt_tails, 1);
    assert!(replay.bytes_cut > 0);
    // The file now ends at the last good record: a second start finds nothing to cut.
    wal.close();
    let (_, _, again) = start(&config);
    assert_eq!(again.corrupt_tails, 0);
    assert_eq!(again.records.len(), 2);
}

#[tokio::test]
async fn a_flipped_bit_is_caught_by_the_checksum() {
    let dir = tempfile::tempdir().unwrap();
    let config = WalConfig::new(dir.path().join("wal"));
    write_three(&config).await;
    let path = only_segment_with_data(&config.dir);
    let mut data = fs::read(&path).unwrap();
    let last = data.len() - 20;
    data[last] ^= 0x10;
    fs::write(&path, &data).unwrap();
    let (_, _, replay) = start(&config);
    assert_eq!(replayed(&replay), vec![(1, "r0".into()), (2, "r1".into())]);
    assert_eq!(replay.corrupt_tails, 1);
}

#[tokio::test]
async fn garbage_lengths_do_not_allocate_or_panic() {
    let dir = tempfile::tempdir().unwrap();
    let config = WalConfig::new(dir.path().join("wal"));
    fs::create_dir_all(&config.dir).unwrap();
    let mut garbage = u32::MAX.to_le_bytes().to_vec();
    garbage.extend_from_slice(&[0xAB; 100]);
    fs::write(segment_path(&config.dir, 1), &garbage).unwrap();
    let replay = Wal::replay(&config).unwrap();
    assert!(replay.records.is_empty());
    assert_eq!(replay.corrupt_tails, 1);
    assert_eq!(fs::metadata(segment_path(&config.dir, 1)).unwrap().len(), 0);
}

#[tokio::test]
async fn segments_roll_and_are_released_once_flushed() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = WalConfig::new(dir.path().join("wal"));
    config.segment_bytes = 1; // every group seals its segment
    let (wal, _, _) = start(&config);
    for i in 0..4 {
        wal.append(tenant(), Signal::Logs, batch(&format!("r{i}")))
            .await
            .unwrap();
    }
    // Four sealed segments plus the open one.
    assert_eq!(list_segments(&config.dir).unwrap().len(), 5);
    // Records 1 and 2 are in Parquet: their segments go, the rest stay.
    wal.release(Some(3));
    assert_eq!(list_segments(&config.dir).unwrap().len(), 3);
    assert_eq!(wal.stats().segments_deleted.load(Ordering::Relaxed), 2);
    // Nothing buffered: every sealed segment goes; the open one stays.
    wal.release(None);
    assert_eq!(list_segments(&config.dir).unwrap().len(), 1);
    wal.close();
    let (_, _, replay) = start(&config);
    assert!(replay.records.is_empty());
}

#[tokio::test]
async fn appends_are_refused_when_the_wal_is_full() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = WalConfig::new(dir.path().join("wal"));
    config.max_bytes = 1;
    let (wal, applied, _) = start(&config);
    wal.append(tenant(), Signal::Logs, batch("fits"))
        .await
        .unwrap();
    assert!(matches!(
        wal.append(tenant(), Signal::Logs, batch("over")).await,
        Err(Error::WalFull)
    ));
    assert_eq!(applied.lock().len(), 1);
    wal.close();
}
