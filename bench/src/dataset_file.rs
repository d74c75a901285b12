//! Data sets on disk: a JSON header line, then per request `u64 items | u32 length | bytes`
//! (little endian).

use std::fs::File;
use std::io::{self, BufRead, BufReader, BufWriter, Read, Write};
use std::path::Path;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::data::{Dataset, Workload};

#[derive(Serialize, Deserialize)]
struct Header {
    format: u32,
    workload: Workload,
    requests: usize,
    start_ns: i64,
    end_ns: i64,
}

pub fn write(path: &Path, dataset: &Dataset) -> io::Result<()> {
    let mut out = BufWriter::new(File::create(path)?);
    let header = Header {
        format: 1,
        workload: dataset.workload,
        requests: dataset.requests.len(),
        start_ns: dataset.start_ns,
        end_ns: dataset.end_ns,
    };
    serde_json::to_writer(&mut out, &header)?;
    out.write_all(b"\n")?;
    for (request, items) in dataset.requests.iter().zip(&dataset.items) {
        out.write_all(&items.to_le_bytes())?;
        out.write_all(&(request.len() as u32).to_le_bytes())?;
        out.write_all(request)?;
    }
    out.flush()
}

pub fn read(path: &Path) -> io::Result<Dataset> {
    let mut input = BufReader::new(File::open(path)?);
    let mut line = String::new();
    input.read_line(&mut line)?;
    let header: Header = serde_json::from_str(&line).map_err(io::Error::other)?;
    if header.format != 1 {
        return Err(io::Error::other(format!(
            "unknown data set format {}",
            header.format
        )));
    }
    let mut requests = Vec::with_capacity(header.requests);
    let mut items = Vec::with_capacity(header.requests);
    for _ in 0..header.requests {
        let mut n = [0u8; 8];
        input.read_exact(&mut n)?;
        let mut len = [0u8; 4];
        input.read_exact(&mut len)?;
        let mut body = vec![0u8; u32::from_le_bytes(len) as usize];
        input.read_exact(&mut body)?;
        items.push(u64::from_le_bytes(n));
        requests.push(Bytes::from(body));
    }
    Ok(Dataset {
        workload: header.workload,
        requests,
        items,
        start_ns: header.start_ns,
        end_ns: header.end_ns,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::{Size, generate};

    #[test]
    fn data_sets_round_trip_through_files() {
        let size = Size {
            items: 3000,
            batch: 1000,
            start_ns: 0,
            span_ns: 3_600_000_000_000,
        };
        let dataset = generate(Workload::AppLogs, 9, &size);
        let dir = std::env::temp_dir().join(format!("strata-bench-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("logs.otlp");
        write(&path, &dataset).unwrap();
        let back = read(&path).unwrap();
        assert_eq!(back.requests, dataset.requests);
        assert_eq!(back.items, dataset.items);
        assert_eq!(back.total_items(), 3000);
        std::fs::remove_dir_all(dir).unwrap();
    }
}
