//! Self-metrics of the receivers. Labels carry only validated tenant ids and fixed values.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct TenantSignal {
    pub tenant: String,
    pub signal: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct RequestLabels {
    pub signal: &'static str,
    pub transport: &'static str,
    pub outcome: &'static str,
}

/// Counters of everything the receivers accept and refuse.
#[derive(Debug, Default, Clone)]
pub struct IngestMetrics {
    pub(crate) items: Family<TenantSignal, Counter>,
    pub(crate) rejected_items: Family<TenantSignal, Counter>,
    pub(crate) bytes: Family<TenantSignal, Counter>,
    pub(crate) requests: Family<RequestLabels, Counter>,
}

impl IngestMetrics {
    /// Registers the counters under `strata_ingest_*`.
    pub fn register(&self, registry: &mut Registry) {
        let r = registry.sub_registry_with_prefix("strata_ingest");
        r.register(
            "items",
            "Spans, log records and metric data points stored",
            self.items.clone(),
        );
        r.register(
            "rejected_items",
            "Items refused with an OTLP partial success",
            self.rejected_items.clone(),
        );
        r.register(
            "bytes",
            "Bytes of export request bodies accepted, after decompression",
            self.bytes.clone(),
        );
        r.register(
            "requests",
            "Export requests by signal, transport and outcome",
            self.requests.clone(),
        );
    }

    pub(crate) fn request(
        &self,
        signal: &'static str,
        transport: &'static str,
        outcome: &'static str,
    ) {
        self.requests
            .get_or_create(&RequestLabels {
                signal,
                transport,
                outcome,
            })
            .inc();
    }
}
