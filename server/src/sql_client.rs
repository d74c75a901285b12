//! `strata sql`: runs one query against a node's HTTP API and prints the result.

use std::io::Write;

use arrow::util::pretty::pretty_format_batches;
use strata_query::format::Format;

use crate::config::{OutputFormat, SqlArgs};

/// Runs the query; returns the text to print, or the error to report.
pub async fn run(args: &SqlArgs) -> Result<String, String> {
    let accept = match args.format {
        OutputFormat::Table => Format::ARROW_TYPE,
        OutputFormat::Json => Format::JSON_TYPE,
        OutputFormat::Csv => Format::CSV_TYPE,
    };
    let url = format!("{}/api/v1/sql", args.server.trim_end_matches('/'));
    let mut request = reqwest::Client::new().post(&url).header("accept", accept);
    if let Some(tenant) = &args.tenant {
        request = request.header(strata_ingest::TENANT_HEADER, tenant);
    }
    if let Some(key) = &args.api_key {
        request = request.bearer_auth(key);
    }
    let response = request
        .json(&serde_json::json!({ "sql": args.query }))
        .send()
        .await
        .map_err(|e| format!("cannot reach {url}: {e}"))?;
    let status = response.status();
    let body = response
        .bytes()
        .await
        .map_err(|e| format!("reading the response from {url}: {e}"))?;
    if !status.is_success() {
        let message = serde_json::from_slice::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v.get("error").and_then(|e| e.as_str()).map(str::to_string))
            .unwrap_or_else(|| String::from_utf8_lossy(&body).into_owned());
        return Err(format!("{status}: {message}"));
    }
    match args.format {
        OutputFormat::Json | OutputFormat::Csv => Ok(String::from_utf8_lossy(&body).into_owned()),
        OutputFormat::Table => {
            let reader =
                arrow::ipc::reader::StreamReader::try_new(std::io::Cursor::new(body), None)
                    .map_err(|e| format!("invalid Arrow stream from the server: {e}"))?;
            let schema = reader.schema();
            let batches = reader
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| format!("invalid Arrow stream from the server: {e}"))?;
            let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
            let table = if batches.is_empty() {
                let empty = arrow::array::RecordBatch::new_empty(schema);
                pretty_format_batches(&[empty])
            } else {
                pretty_format_batches(&batches)
            }
            .map_err(|e| format!("formatting the result: {e}"))?;
            Ok(format!(
                "{table}\n{rows} row{}\n",
                if rows == 1 { "" } else { "s" }
            ))
        }
    }
}

/// Prints the result of [`run`]; returns the process exit code.
pub async fn main(args: SqlArgs) -> i32 {
    match run(&args).await {
        Ok(text) => {
            let mut out = std::io::stdout().lock();
            let _ = out.write_all(text.as_bytes());
            if !text.ends_with('\n') {
                let _ = out.write_all(b"\n");
            }
            0
        }
        Err(e) => {
            eprintln!("error: {e}");
            1
        }
    }
}
