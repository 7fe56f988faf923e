//! [`Metrics::render`]: the Prometheus text exposition format, version 0.0.4 (one
//! `# HELP` and one `# TYPE` line per family, then its samples). No I/O.

use super::*;

/// The `Content-Type` of [`Metrics::render`]'s output.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Writes families into one string.
struct Out(String);

impl Out {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.0, "# HELP {name} {help}");
        let _ = writeln!(self.0, "# TYPE {name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: impl std::fmt::Display) {
        self.0.push_str(name);
        if !labels.is_empty() {
            self.0.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.0.push(',');
                }
                let _ = write!(self.0, "{k}=\"{}\"", escape(v));
            }
            self.0.push('}');
        }
        let _ = writeln!(self.0, " {value}");
    }
}

/// Label value escaping of the text format: backslash, double quote, line feed.
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Seconds as the text format writes floats (`0.0025`, `10`).
fn seconds(micros: u64) -> String {
    format!("{}", micros as f64 / 1e6)
}

impl Metrics {
    /// The whole exposition, every family with its HELP and TYPE, fixed label sets with
    /// all their values (zeros included, so that rates start from a known point).
    pub fn render(&self) -> String {
        let mut o = Out(String::with_capacity(8192));
        self.render_connections(&mut o);
        self.render_logins(&mut o);
        self.render_pool(&mut o);
        self.render_backends(&mut o);
        self.render_misc(&mut o);
        o.0
    }

    fn render_connections(&self, o: &mut Out) {
        let name = "mmp_connections_accepted_total";
        o.family(name, "counter", "Connections accepted, by service.");
        for p in PROTOCOLS {
            o.sample(
                name,
                &[("service", service(p))],
                load(&self.accepted[pi(p)]),
            );
        }
        let name = "mmp_connections_refused_total";
        o.family(name, "counter", "Connections closed at accept or while waiting for the PROXY header, by service and reason.");
        for p in PROTOCOLS {
            for (i, r) in REFUSALS.into_iter().enumerate() {
                let labels = [("service", service(p)), ("reason", refusal_label(r))];
                o.sample(name, &labels, load(&self.refused[pi(p)][i]));
            }
        }
        let name = "mmp_sessions";
        o.family(name, "gauge", "Sessions now, by service and phase.");
        for p in PROTOCOLS {
            for (i, ph) in PHASES.into_iter().enumerate() {
                let labels = [("service", service(p)), ("phase", phase_label(ph))];
                o.sample(name, &labels, self.sessions[pi(p)][i].load(Relaxed));
            }
        }
        let name = "mmp_tls_handshakes_total";
        o.family(
            name,
            "counter",
            "TLS handshakes with clients that ended (successful or not), by service.",
        );
        for p in PROTOCOLS {
            let t = &self.tls[pi(p)];
            o.sample(name, &[("service", service(p))], load(&t[0]) + load(&t[1]));
        }
        let name = "mmp_tls_handshake_failures_total";
        o.family(
            name,
            "counter",
            "TLS handshakes with clients that failed, by service.",
        );
        for p in PROTOCOLS {
            o.sample(name, &[("service", service(p))], load(&self.tls[pi(p)][1]));
        }
    }

    fn render_logins(&self, o: &mut Out) {
        let name = "mmp_logins_total";
        o.family(
            name,
            "counter",
            "Logins that ended, by service and outcome (ok: the store accepted it).",
        );
        for p in PROTOCOLS {
            for (i, out) in OUTCOMES.into_iter().enumerate() {
                let labels = [("service", service(p)), ("outcome", outcome_label(out))];
                o.sample(name, &labels, load(&self.logins[pi(p)][i]));
            }
        }
        let name = "mmp_login_duration_seconds";
        o.family(
            name,
            "histogram",
            "Time from complete credentials to the login's outcome.",
        );
        let h = &self.login_duration;
        let mut cumulative = 0;
        let bucket = format!("{name}_bucket");
        for (i, le) in LOGIN_BUCKETS.iter().enumerate() {
            cumulative += load(&h.buckets[i]);
            o.sample(&bucket, &[("le", &le.to_string())], cumulative);
        }
        cumulative += load(&h.buckets[LOGIN_BUCKETS.len()]);
        o.sample(&bucket, &[("le", "+Inf")], cumulative);
        o.sample(&format!("{name}_sum"), &[], seconds(load(&h.sum_micros)));
        o.sample(&format!("{name}_count"), &[], cumulative);
    }

    fn render_pool(&self, o: &mut Out) {
        let name = "mmp_worker_queue_depth";
        o.family(name, "gauge", "Login jobs waiting for a worker.");
        o.sample(name, &[], self.queue_depth.load(Relaxed));
        let name = "mmp_workers_busy";
        o.family(name, "gauge", "Workers running a login job.");
        o.sample(name, &[], self.workers_busy.load(Relaxed));
    }

    fn render_backends(&self, o: &mut Out) {
        let dir = self.directory.lock().clone();
        let name = "mmp_directory_searches_total";
        o.family(name, "counter", "Directory searches, by LdapUrl server.");
        for (url, [n, _]) in &dir {
            o.sample(name, &[("url", url)], n);
        }
        let name = "mmp_directory_errors_total";
        o.family(name, "counter", "Directory searches that failed (no answer, connection or protocol error), by LdapUrl server.");
        for (url, [_, n]) in &dir {
            o.sample(name, &[("url", url)], n);
        }
        let store = self.store.lock().clone();
        let name = "mmp_store_connects_total";
        o.family(
            name,
            "counter",
            "Connection attempts to stores, by store host.",
        );
        for (host, [n, _]) in &store {
            o.sample(name, &[("host", host)], n);
        }
        let name = "mmp_store_connect_failures_total";
        o.family(
            name,
            "counter",
            "Failed connection attempts to stores, by store host.",
        );
        for (host, [_, n]) in &store {
            o.sample(name, &[("host", host)], n);
        }
        for (name, help, r) in [
            (
                "mmp_cache_hits_total",
                "Cache look-ups that found a fresh entry, by cache.",
                0,
            ),
            (
                "mmp_cache_misses_total",
                "Cache look-ups that found nothing usable, by cache.",
                1,
            ),
        ] {
            o.family(name, "counter", help);
            for c in CACHES {
                o.sample(
                    name,
                    &[("cache", cache_label(c))],
                    load(&self.cache[cache_index(c)][r]),
                );
            }
        }
        let name = "mmp_cache_entries";
        o.family(name, "gauge", "Entries held by each cache.");
        for c in CACHES {
            let n = self.cache_entries[cache_index(c)].load(Relaxed);
            o.sample(name, &[("cache", cache_label(c))], n);
        }
    }

    fn render_misc(&self, o: &mut Out) {
        let name = "mmp_relayed_bytes_total";
        o.family(
            name,
            "counter",
            "Bytes relayed after login (up: client to store, down: store to client).",
        );
        for (i, d) in DIRECTIONS.into_iter().enumerate() {
            o.sample(
                name,
                &[("direction", direction_label(d))],
                load(&self.relayed[i]),
            );
        }
        let name = "mmp_bad_guys";
        o.family(
            name,
            "gauge",
            "Addresses in the bad-guy (failed login delay) table.",
        );
        o.sample(name, &[], self.bad_guys.load(Relaxed));
        let name = "mmp_reloads_total";
        o.family(name, "counter", "Configuration reloads attempted (SIGHUP).");
        o.sample(name, &[], load(&self.reloads[0]) + load(&self.reloads[1]));
        let name = "mmp_reload_failures_total";
        o.family(
            name,
            "counter",
            "Configuration reloads refused (the old configuration stays).",
        );
        o.sample(name, &[], load(&self.reloads[1]));
        let name = "mmp_build_info";
        o.family(
            name,
            "gauge",
            "Always 1; the version label says which mmp runs.",
        );
        o.sample(name, &[("version", env!("CARGO_PKG_VERSION"))], 1);
        let name = "mmp_start_time_seconds";
        o.family(
            name,
            "gauge",
            "Start time of the process, seconds since the Unix epoch.",
        );
        o.sample(name, &[], self.start_time);
    }
}

fn load(a: &AtomicU64) -> u64 {
    a.load(Relaxed)
}
