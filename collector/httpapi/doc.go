// Package httpapi serves the daemon's HTTP API, Prometheus metrics and live
// page.
//
// The command wires it: New takes the inventory, the store's reads (Store),
// the firing alerts (Alerts), the silences (Silences) and a report builder as small interfaces and
// functions over the domain types of package monitor, and Observe takes each
// round's []monitor.Result; there are no flags or configuration here.
// Every answer is JSON with Content-Type application/json, but / and
// /report (HTML) and /metrics (Prometheus text); every error is
// {"error": "message"} and never carries more than that message (5xx
// errors are logged in full).
//
// # Routes
//
//	GET /healthz                         {"status": "ok" | "degraded", "problems": [...]}; open
//	                                     even with a token (problems only with it)
//	GET /                                the live page
//	GET /report?since=7d                 the HTML peak report
//	GET /metrics                         Prometheus text exposition
//	GET /api/servers                     [ServerSummary], in inventory order
//	GET /api/servers/{name}/latest       Snapshot
//	GET /api/servers/{name}/snapshots    SnapshotPage: ?since=&until=&limit=
//	GET /api/report?since=7d             the report's figures (report.Report)
//
// ServerSummary:
//
//	{"name", "description", "tags": [],
//	 "status": "ok" | "down" | "no data",      // down: the newest attempt failed
//	 "last_snapshot": time | null,
//	 "last_failure": {"at", "kind", "error"} | null,
//	 "cpu_percent", "memory_used_percent", "disk_used_percent": number | null,
//	 "load1": number | null, "logical_cpus": int | null,
//	 "network_bytes_per_second": number | null,   // rx + tx; null before probe schema 2
//	 "matched_total": int | null, "matched": [{"keyword", "count"}],
//	 "sampling": {"watched": bool, "sample_seconds",  // how those were seen; null: no snapshot
//	              "resolution_seconds", "interval_seconds",            // watched only
//	              "cpu_max_percent", "memory_max_percent", "disk_max_percent"} | null,  // the interval's maxima
//	 "history": [{"at", "cpu", "memory": number | null, "matched": int | null}],
//	                                           // the daemon's attempts of the last hour, oldest first
//	 "firing": [{"rule", "summary", "since",          // null: alert states unreadable
//	             "silenced": bool, "silenced_until": time}] | null,  // silenced_until only when silenced
//	 "thresholds": {"cpu", "memory", "disk", "load": number | null}}  // the server's alert rules; null: rule off
//
// Snapshot is {"server", "at", "duration_ms", "snapshot"}, the snapshot in
// its wire form (probe/snapshot). SnapshotPage is {"server", "since",
// "until", "items": [Snapshot], "next": time | null}: the newest limit
// snapshots with since <= at < until, oldest first. To page back in
// history ask again with until=<next> and the same since; next is null on
// the last page.
//
// Times in queries (since, until; from and to as synonyms on the report
// routes) are RFC 3339 ("2026-11-25T08:00:00Z"; an unescaped '+' of an
// offset, read as a space, is taken as '+'), a date ("2026-11-25",
// midnight in the collector's time zone) or a duration back from now
// ("24h", "7d"), as on the command line (inventory.ParseTime). Defaults: until now; since the beginning for snapshots,
// 7d back for the report. limit is 1 to 1000, default 100. A bad value,
// an empty range, a parameter given twice or an unknown parameter is a
// 400 naming the parameter: {"error": "limit: \"0\" is not a whole number
// from 1 to 1000"}. A server that is not in the current inventory is a
// 404 {"error": "unknown server \"x\""}; a known one without a snapshot
// yet answers /latest with 404 too. Paths that do not exist are a JSON
// 404, other methods than GET and HEAD a JSON 405.
//
// # Authentication
//
// With Options.Token set, every request but /healthz must carry
// "Authorization: Bearer <token>" (compared in constant time); otherwise it
// gets 401 {"error": ...} with WWW-Authenticate. /healthz stays open for
// load balancers and service managers; without the token it tells only
// "ok" or "degraded", with it also the problems.
// Prometheus sends the token with `authorization: {credentials: ...}` in
// its scrape config.
//
// A browser cannot add a header to a page it opens by address, so the two
// pages, / and /report, also take the token as ?token=. The live page reads
// it from its own address and sends it on its fetches as the header, and
// adds it to its links to /report. That is the simplest thing that works
// with no state on the server (no session, no cookie, so no cross-site
// request can borrow the login); its cost is that the token sits in the
// page's address and so in the browser's history: treat a bookmarked
// address as the secret it is. Every answer says Referrer-Policy:
// no-referrer and Cache-Control: no-store, and the pages load nothing from
// elsewhere (a Content-Security-Policy says so), so the address is not
// passed on. The API routes and /metrics refuse ?token= with a 401 that
// says to use the header.
//
// # Metrics
//
// /metrics shows what Observe was last given per server (the daemon calls it
// after each round, so a scrape never reads the database), only for servers
// in the current inventory: a server removed from servers.toml disappears
// at the next scrape. The resource figures come from the newest attempt
// only when it succeeded, so a server that is down has collector_up 0 and
// no stale figures; collector_last_success_timestamp_seconds says when it
// last answered. Nothing is shown of a server before its first
// result. The figures of probe schema version 2 (swap, pressure, run
// queue, network, file handles, sockets, every file system) appear only
// for servers whose probe reports them; a kernel without pressure stall
// information has no collector_pressure_stall_percent. A dedicated registry also carries the Go runtime (go_*) and
// process (process_*) collectors.
//
//	name                                        type       labels          from
//	collector_up                                gauge      server          1 newest attempt ok, 0 failed
//	collector_cpu_busy_percent                  gauge      server          CPU busy %, all CPUs
//	collector_cpu_logical                       gauge      server          logical CPUs
//	collector_load1, _load5, _load15            gauge      server          load averages
//	collector_memory_total_bytes                gauge      server          memory size
//	collector_memory_used_bytes                 gauge      server          memory used
//	collector_memory_available_bytes            gauge      server          memory available
//	collector_memory_used_percent               gauge      server          memory used %
//	collector_disk_total_bytes                  gauge      server, path    file system size (every local one)
//	collector_disk_used_bytes                   gauge      server, path    file system used
//	collector_disk_used_percent                 gauge      server, path    file system used %
//	collector_processes                         gauge      server          all processes
//	collector_processes_matched                 gauge      server, keyword processes matching the keyword
//	collector_processes_matched_rss_bytes       gauge      server, keyword their resident memory, summed
//	collector_processes_matched_cpu_percent     gauge      server, keyword their CPU, summed, % of one CPU
//	collector_swap_pages_per_second             gauge      server, direction  swapped in / out (in, out)
//	collector_pressure_stall_percent            gauge      server, resource   "some" stall % (cpu, memory, io)
//	collector_run_queue                         gauge      server          runnable tasks, the probe left out
//	collector_blocked_tasks                     gauge      server          tasks blocked on I/O
//	collector_network_bytes_per_second          gauge      server, direction  non-loopback traffic (rx, tx)
//	collector_file_handles_allocated            gauge      server          file handles in use
//	collector_file_handles_max                  gauge      server          the system's limit
//	collector_tcp_sockets                       gauge      server, state   TCP sockets by state
//	collector_probe_duration_seconds            gauge      server          newest attempt, ok or failed
//	collector_failures_total                    counter    server, kind    failed attempts since start; 0 for
//	                                                                       each kind once the server is seen
//	collector_last_success_timestamp_seconds    gauge      server          newest successful attempt
//	collector_round_duration_seconds            histogram                  ObserveRound
//	collector_spool_bytes                       gauge                      SetGauges (when given)
//	collector_outbox_pending                    gauge                      SetGauges (when given)
//	collector_store_up                          gauge                      SetGauges (when given)
//	collector_results_lost_total                counter                    SetGauges (when given)
//	collector_cluster_members                   gauge                      SetCluster: live members
//	collector_cluster_owned_servers             gauge                      SetCluster: servers owned now
//	collector_cluster_fenced                    gauge                      SetCluster: 1 while fenced
//	collector_cluster_probes_scheduled_total    counter                    SetCluster: probes asked of it
//	collector_cluster_probes_done_total         counter                    SetCluster: of those, ended
//
// The process count is collector_processes, not collector_processes_total:
// by Prometheus convention a _total suffix marks a counter.
package httpapi
