//! Prometheus metrics (`GET /metrics`): messages by agency, channel and outcome; processing
//! latency and payload size; queue depth and days until each key or certificate expires.
//!
//! Label values come from closed sets (registered agencies, channels, stable codes), so the
//! number of series stays bounded whatever senders do.

use std::sync::atomic::AtomicU64;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// Labels of `gateway_messages_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct MessageLabels {
    /// Sending agency.
    pub agency: String,
    /// `https`, `folder`, `cli`, `import`.
    pub channel: String,
    /// `forwarded`, `duplicate`, `rejected`, `accepted` (dry run).
    pub outcome: String,
    /// The rejection code, or empty.
    pub code: String,
}

/// Labels of the latency histogram.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ChannelLabels {
    /// The channel.
    pub channel: String,
}

/// Labels of the expiry gauge.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KeyLabels {
    /// What the key is: `identity`, `tls`, `receipt`, `agency-signing`, `agency-anchor`.
    pub kind: String,
    /// Whose (agency name, or `gateway`).
    pub owner: String,
    /// SHA-256 fingerprint of the certificate, or the identity's id.
    pub fingerprint: String,
}

/// The gateway's metrics.
pub struct Metrics {
    registry: Registry,
    messages: Family<MessageLabels, Counter>,
    latency: Family<ChannelLabels, Histogram>,
    size: Histogram,
    queue_depth: Gauge,
    expiry_days: Family<KeyLabels, Gauge<f64, AtomicU64>>,
    expiry_warning: Family<KeyLabels, Gauge>,
    reloads: Family<Vec<(String, String)>, Counter>,
    grace_opens: Family<Vec<(String, String)>, Counter>,
    /// TLS connections open now.
    pub connections: Gauge,
    /// Agents waiting now on `GET /v1/requests/next`.
    pub request_polls: Gauge,
    /// `accept()` failures (descriptors exhausted...), each followed by a back-off.
    pub accept_errors: Counter,
    disk_free: Family<Vec<(String, String)>, Gauge>,
    disk_low: Family<Vec<(String, String)>, Gauge>,
    part_ready: Family<Vec<(String, String)>, Gauge>,
    mails: Family<Vec<(String, String)>, Counter>,
    /// Why the mail channel's mailbox cannot be read now, for `/readyz`.
    mail_problem: std::sync::Mutex<Option<String>>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    /// An empty set of metrics.
    // Long by nature: one registration per metric, in the order `/metrics` lists them, so the
    // catalogue of names and help texts reads in one place.
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("gateway");
        let messages = Family::<MessageLabels, Counter>::default();
        registry.register(
            "messages",
            "Messages processed, by agency, channel, outcome and rejection code",
            messages.clone(),
        );
        let latency = Family::<ChannelLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.001, 2.0, 18))
        });
        registry.register(
            "processing_seconds",
            "Time to open, verify, validate and forward one payload",
            latency.clone(),
        );
        let size = Histogram::new(exponential_buckets(1024.0, 4.0, 12));
        registry.register(
            "payload_bytes",
            "Size of processed XML documents",
            size.clone(),
        );
        let queue_depth = Gauge::default();
        registry.register(
            "queue_depth",
            "Messages in the outbox queue's new/ not yet taken by the hub",
            queue_depth.clone(),
        );
        let expiry_days = Family::<KeyLabels, Gauge<f64, AtomicU64>>::default();
        registry.register(
            "key_expiry_days",
            "Whole days until a key or certificate expires or its grace ends (negative: past)",
            expiry_days.clone(),
        );
        let expiry_warning = Family::<KeyLabels, Gauge>::default();
        registry.register(
            "key_expiry_warning_days",
            "Set for keys within a warning threshold: 30, 7 or 1 (days before expiry), 0 once expired",
            expiry_warning.clone(),
        );
        let reloads = Family::<Vec<(String, String)>, Counter>::default();
        registry.register(
            "key_reloads",
            "Reloads of keys/ while serving, by result (a failed one keeps the previous keys)",
            reloads.clone(),
        );
        let grace_opens = Family::<Vec<(String, String)>, Counter>::default();
        registry.register(
            "opened_with_grace_identity",
            "Payloads opened with an identity in grace, by agency and identity: retire it once this stops growing",
            grace_opens.clone(),
        );
        let connections = Gauge::default();
        registry.register(
            "connections",
            "HTTPS connections open now (at most http.max_connections)",
            connections.clone(),
        );
        let request_polls = Gauge::default();
        registry.register(
            "request_polls",
            "Agents waiting now for a request (GET /v1/requests/next)",
            request_polls.clone(),
        );
        let accept_errors = Counter::default();
        registry.register(
            "accept_errors",
            "Failures to accept a connection (such as too many open files); each backs off up to a second",
            accept_errors.clone(),
        );
        let disk_free = Family::<Vec<(String, String)>, Gauge>::default();
        registry.register(
            "disk_free_bytes",
            "Bytes free on the volumes the gateway writes to (state, outbox, quarantine)",
            disk_free.clone(),
        );
        let disk_low = Family::<Vec<(String, String)>, Gauge>::default();
        registry.register(
            "disk_low",
            "1 while a volume has less than limits.min_free_disk_bytes free (the gateway is then not ready)",
            disk_low.clone(),
        );
        let part_ready = Family::<Vec<(String, String)>, Gauge>::default();
        registry.register(
            "part_ready",
            "1 while the ledger (part=\"ledger\") or the queue (part=\"queue\") can take messages, or the mailbox (part=\"mail\") is connected; 0 while not (/readyz says why)",
            part_ready.clone(),
        );
        let mails = Family::<Vec<(String, String)>, Counter>::default();
        registry.register(
            "mails",
            "Mails handled by the mail channel, by where they went (processed, rejected) and whether they were answered",
            mails.clone(),
        );
        Metrics {
            mail_problem: Default::default(),
            mails,
            part_ready,
            connections,
            request_polls,
            accept_errors,
            disk_free,
            disk_low,
            grace_opens,
            reloads,
            registry,
            messages,
            latency,
            size,
            queue_depth,
            expiry_days,
            expiry_warning,
        }
    }

    /// Records a payload opened with a rotated-out identity.
    pub fn record_grace_open(&self, agency: &str, identity: &str) {
        self.grace_opens
            .get_or_create(&vec![
                ("agency".to_owned(), agency.to_owned()),
                ("identity".to_owned(), identity.to_owned()),
            ])
            .inc();
    }

    /// Records one reload of `keys/`.
    pub fn record_reload(&self, ok: bool) {
        let result = if ok { "ok" } else { "failed" };
        self.reloads
            .get_or_create(&vec![("result".to_owned(), result.to_owned())])
            .inc();
    }

    /// Records one processed payload: its labels, the XML's size when it was accepted, and
    /// how long it took.
    pub fn record(&self, labels: MessageLabels, size: Option<u64>, elapsed: Duration) {
        self.latency
            .get_or_create(&ChannelLabels {
                channel: labels.channel.clone(),
            })
            .observe(elapsed.as_secs_f64());
        self.messages.get_or_create(&labels).inc();
        if let Some(s) = size {
            self.size.observe(s as f64);
        }
    }

    /// Sets whether `part` (`ledger`, `queue`) can take messages.
    pub fn set_part_ready(&self, part: &str, ready: bool) {
        let labels = vec![("part".to_owned(), part.to_owned())];
        self.part_ready.get_or_create(&labels).set(i64::from(ready));
    }

    /// Records whether the mail channel can read its mailbox (`None`: it can), for
    /// `gateway_part_ready{part="mail"}` and `/readyz`.
    pub fn set_mail_problem(&self, problem: Option<String>) {
        self.set_part_ready("mail", problem.is_none());
        *self.mail_problem.lock().unwrap_or_else(|p| p.into_inner()) = problem;
    }

    /// Why the mail channel cannot read its mailbox now, if so.
    pub fn mail_problem(&self) -> Option<String> {
        self.mail_problem
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Counts a mail moved to `folder` (`processed`, `rejected`), answered or not.
    pub fn record_mail(&self, folder: &str, answered: bool) {
        self.mails
            .get_or_create(&vec![
                ("folder".to_owned(), folder.to_owned()),
                ("answered".to_owned(), answered.to_string()),
            ])
            .inc();
    }

    /// Sets the number of messages waiting for the hub in the queue.
    pub fn set_queue_depth(&self, depth: u64) {
        self.queue_depth
            .set(i64::try_from(depth).unwrap_or(i64::MAX));
    }

    /// Sets the free space of a volume the gateway writes to, and whether it is below the
    /// minimum.
    pub fn set_volume(&self, volume: &str, free: Option<u64>, low: bool) {
        let labels = vec![("volume".to_owned(), volume.to_owned())];
        if let Some(free) = free {
            self.disk_free
                .get_or_create(&labels)
                .set(i64::try_from(free).unwrap_or(i64::MAX));
        }
        self.disk_low.get_or_create(&labels).set(i64::from(low));
    }

    /// Replaces the key expiry gauges: one `(labels, days left)` per key still in use.
    pub fn set_key_expiries(&self, keys: impl IntoIterator<Item = (KeyLabels, i64)>) {
        // Rebuilt each time, so a removed or retired key does not linger.
        self.expiry_days.clear();
        self.expiry_warning.clear();
        for (labels, days) in keys {
            self.expiry_days.get_or_create(&labels).set(days as f64);
            if let Some(t) = crate::keyring::inventory::warning_threshold(days) {
                self.expiry_warning.get_or_create(&labels).set(t);
            }
        }
    }

    /// The Prometheus text format of every metric as it stands (the gauges read from disk
    /// are refreshed by `health::refresh_gauges` first).
    pub fn render(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}

/// Counts one in `gauge` while it is held (a connection open, an agent waiting).
#[derive(Debug)]
pub struct Held(Gauge);

impl Held {
    /// One more in `gauge`, until dropped.
    pub fn new(gauge: &Gauge) -> Held {
        gauge.inc();
        Held(gauge.clone())
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        self.0.dec();
    }
}
