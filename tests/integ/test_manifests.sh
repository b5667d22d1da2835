#!/usr/bin/env bash
# The fleet files, checked without a cluster: contrib/k8s/daemonset.yaml
# (the fields that matter, and its start-up script run with a stand-in for
# epgate), contrib/prometheus/{scrape,alerts}.yml (promtool check config,
# check rules, and the alert unit tests of alerts_test.yml), and
# contrib/grafana/epgate-dashboard.json (every query valid PromQL naming
# only the metrics epgate serve exports). No root; a few seconds.
set -u
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT" || exit 1
T0=$SECONDS
pass=0 fail=0
ok() { pass=$((pass + 1)); echo "ok   $*"; }
ko() {
	fail=$((fail + 1))
	echo "FAIL $1"
	shift
	local l
	for l in "$@"; do printf '       %s\n' "$l"; done
}
TMP=$(mktemp -d /tmp/epg-manifests.XXXXXX)
finish() {
	local rc=$?
	trap - EXIT
	rm -rf "$TMP"
	[ "$fail" -eq 0 ] && [ "$rc" -ne 0 ] && ko "the test script itself exited with status $rc"
	echo "# $((SECONDS - T0)) s"
	echo "$pass passed, $fail failed"
	[ "$fail" -eq 0 ]
	exit $?
}
trap finish EXIT

DS=contrib/k8s/daemonset.yaml
SCRAPE=contrib/prometheus/scrape.yml
ALERTS=contrib/prometheus/alerts.yml
ALERTS_TEST=contrib/prometheus/alerts_test.yml
DASH=contrib/grafana/epgate-dashboard.json
# Debian's python3 with python3-yaml (scripts/install-deps.sh), not whatever
# python3 comes first in PATH.
PY=/usr/bin/python3

# ---- prerequisites: a check that cannot run is a failure
missing=()
[ -x "$PY" ] && "$PY" -c 'import yaml' 2>/dev/null || missing+=("python3-yaml ($PY -c 'import yaml')")
command -v promtool >/dev/null || missing+=("promtool (Debian's prometheus)")
for f in "$DS" "$SCRAPE" "$ALERTS" "$ALERTS_TEST" "$DASH" user/lib/metrics.c; do
	[ -f "$f" ] || missing+=("$f")
done
if [ ${#missing[@]} -gt 0 ]; then
	ko "prerequisites: missing ${missing[*]}"
	exit 1
fi
ok "prerequisites: python3-yaml, promtool, the files"

# The metric names epgate serve exports: a contract for dashboards and
# alerts. Each must be one the renderer (user/lib/metrics.c) writes.
METRICS="epgate_endpoint_packets_total epgate_endpoint_bytes_total epgate_rule_hits_total
epgate_conntrack_entries epgate_conntrack_allowance_available
epgate_conntrack_allowance_exceeded_total epgate_passthrough_packets_total
epgate_policy_generation epgate_policy_apply_timestamp_seconds
epgate_policy_apply_errors_total epgate_attached epgate_build_info
epgate_flowlog_records_skipped_total epgate_flowlog_write_errors_total
epgate_spoofed_packets_total"
absent=()
for m in $METRICS; do
	grep -q "\"${m}[{ \"]" user/lib/metrics.c || absent+=("$m")
done
if [ ${#absent[@]} -eq 0 ]; then
	ok "the $(wc -w <<<"$METRICS") contract metric names are all rendered by user/lib/metrics.c"
else
	ko "user/lib/metrics.c does not render: ${absent[*]}"
fi
export METRICS

# ---- DaemonSet, dashboard, scrape and alert files: structure (python)
export DS SCRAPE ALERTS DASH TMP
"$PY" - >"$TMP/py.out" 2>&1 <<'EOF'
import json, os, re, sys
import yaml

def ok(msg): print("ok   " + msg)
def ko(msg, *detail):
    print("FAIL " + msg)
    for d in detail:
        print("       " + str(d))
def check(name, cond, *detail):
    ok(name) if cond else ko(name, *detail)

METRICS = set(os.environ["METRICS"].split())
LABELS = {"endpoint_id", "service_name", "direction", "action", "reason", "group_id",
          "network_acl_id", "rule", "interface", "mode", "hook", "version",
          "instance", "job", "pod", "le", "alertname", "alertstate"}

# ---------------------------------------------------------------- DaemonSet
try:
    docs = [d for d in yaml.safe_load_all(open(os.environ["DS"])) if d]
    ok("daemonset.yaml parses (%d document%s)" % (len(docs), "" if len(docs) == 1 else "s"))
except Exception as e:
    ko("daemonset.yaml parses", e)
    docs = []
dss = [d for d in docs if d.get("kind") == "DaemonSet"]
check("one DaemonSet, apiVersion apps/v1", len(dss) == 1 and dss[0].get("apiVersion") == "apps/v1",
      [(d.get("kind"), d.get("apiVersion")) for d in docs])
ds = dss[0] if dss else {}
tpl = ds.get("spec", {}).get("template", {})
pod = tpl.get("spec", {})
meta = tpl.get("metadata", {})
sel = ds.get("spec", {}).get("selector", {}).get("matchLabels", {})
check("the selector matches the pod template's labels",
      sel and all(meta.get("labels", {}).get(k) == v for k, v in sel.items()), sel, meta.get("labels"))
check("hostNetwork: true", pod.get("hostNetwork") is True)
containers = pod.get("containers", [])
inits = pod.get("initContainers", [])
main = [c for c in containers if c.get("name") == "epgate"]
check("a container named epgate (the only long-running one)", len(main) == 1 and len(containers) == 1,
      [c.get("name") for c in containers])
main = main[0] if main else {}
sc = main.get("securityContext", {})
caps = sc.get("capabilities", {})
check("epgate: capabilities add exactly BPF NET_ADMIN SYS_ADMIN PERFMON",
      sorted(caps.get("add", [])) == ["BPF", "NET_ADMIN", "PERFMON", "SYS_ADMIN"], caps.get("add"))
check("epgate: capabilities drop ALL", caps.get("drop") == ["ALL"], caps.get("drop"))
check("epgate: not privileged", sc.get("privileged") is not True, sc.get("privileged"))
check("epgate: no allowPrivilegeEscalation: true", sc.get("allowPrivilegeEscalation") is not True)
vols = {v.get("name"): v for v in pod.get("volumes", [])}
bpf_vols = [n for n, v in vols.items() if v.get("hostPath", {}).get("path") == "/sys/fs/bpf"]
check("volume: hostPath /sys/fs/bpf", len(bpf_vols) == 1, list(vols))
bpfv = bpf_vols[0] if bpf_vols else None
def mounts(c, vol):
    return [m for m in c.get("volumeMounts", []) if m.get("name") == vol]
bidir = [c for c in inits + containers
         if any(m.get("mountPath") == "/sys/fs/bpf" and m.get("mountPropagation") == "Bidirectional"
                for m in mounts(c, bpfv))]
check("bpffs: mounted at /sys/fs/bpf with mountPropagation Bidirectional",
      len(bidir) >= 1, [c.get("name") for c in inits + containers])
# Kubernetes refuses Bidirectional propagation outside privileged containers.
bad = [c.get("name") for c in inits + containers
       if any(m.get("mountPropagation") == "Bidirectional" for m in c.get("volumeMounts", []))
       and c.get("securityContext", {}).get("privileged") is not True]
check("every Bidirectional mount is in a privileged container (else the API refuses the pod)", not bad, bad)
priv = [c for c in inits + containers if c.get("securityContext", {}).get("privileged") is True]
priv_ok = all(c in inits and "mount -t bpf bpf /sys/fs/bpf" in " ".join(c.get("command", []) + c.get("args", []))
              for c in priv)
check("the only privileged container is the init container that mounts bpffs",
      priv_ok, [c.get("name") for c in priv])
mm = mounts(main, bpfv)
check("epgate: mounts bpffs at /sys/fs/bpf, receiving host mounts (HostToContainer)",
      len(mm) == 1 and mm[0].get("mountPath") == "/sys/fs/bpf"
      and mm[0].get("mountPropagation") in ("HostToContainer", "Bidirectional"), mm)
cfgv = [n for n, v in vols.items() if "configMap" in v]
cm = [m for n in cfgv for m in mounts(main, n)]
check("config: a ConfigMap volume mounted at /etc/epgate",
      len(cm) == 1 and cm[0].get("mountPath") == "/etc/epgate", cm)
script = " ".join(main.get("command", []) + main.get("args", []))
check("epgate: runs serve --config /etc/epgate/*.json",
      "/usr/sbin/epgate serve" in script and "--config /etc/epgate/*.json" in script)
env = {e["name"]: e for e in main.get("env", [])}
check("epgate: interfaces from env EPGATE_INTERFACES, passed as --interface",
      "EPGATE_INTERFACES" in env and "--interface" in script)
check("epgate: POD_IP from the downward API (status.podIP), --listen on it",
      env.get("POD_IP", {}).get("valueFrom", {}).get("fieldRef", {}).get("fieldPath") == "status.podIP"
      and "--listen" in script)
ports = [p for p in main.get("ports", []) if p.get("containerPort") == 9745]
check("epgate: containerPort 9745 named metrics", len(ports) == 1 and ports[0].get("name") == "metrics", ports)
for kind in ("livenessProbe", "readinessProbe"):
    hg = main.get(kind, {}).get("httpGet", {})
    check("epgate: %s GET /healthz on 9745" % kind, hg.get("path") == "/healthz" and hg.get("port") == 9745, hg)
ann = meta.get("annotations", {})
check("pod annotations: prometheus.io/scrape \"true\", port \"9745\", path /metrics",
      ann.get("prometheus.io/scrape") == "true" and ann.get("prometheus.io/port") == "9745"
      and ann.get("prometheus.io/path") == "/metrics", ann)
aa = ann.get("container.apparmor.security.beta.kubernetes.io/epgate") == "unconfined" or \
    sc.get("appArmorProfile", {}).get("type") == "Unconfined"
check("epgate: AppArmor unconfined (the default profile denies writes under /sys/fs/bpf)", aa)
lock = [n for n, v in vols.items() if v.get("hostPath", {}).get("path") == "/run/lock"]
check("epgate: the host's /run/lock (one serve per pin directory on the node)",
      lock and any(m.get("mountPath") == "/run/lock" for m in mounts(main, lock[0])))
for c in inits + containers:
    if not c.get("image"):
        ko("container %s has no image" % c.get("name"))
# the scripts, for the shell test that follows
open(os.path.join(os.environ["TMP"], "main.sh"), "w").write(main.get("command", ["", "", ""])[2]
                                                             if len(main.get("command", [])) == 3 else "")
open(os.path.join(os.environ["TMP"], "init.sh"), "w").write(inits[0]["command"][2]
                                                             if inits and len(inits[0].get("command", [])) == 3 else "")

# ------------------------------------------------------------------ PromQL
FUNCS_AND_KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool",
                      "and", "or", "unless", "offset", "inf", "nan"}
def strip_expr(e):
    e = re.sub(r'"(?:[^"\\]|\\.)*"', '""', e)           # strings
    e = re.sub(r"'(?:[^'\\]|\\.)*'", "''", e)
    labels = set()
    for m in re.finditer(r"\{([^}]*)\}", e):             # label matchers
        labels |= set(re.findall(r"([A-Za-z_][A-Za-z0-9_]*)\s*(?:=~|!~|!=|=)", m.group(1)))
    e = re.sub(r"\{[^}]*\}", " ", e)
    e = re.sub(r"\[[^\]]*\]", " ", e)                    # ranges, subqueries
    for m in re.finditer(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)", e):
        labels |= {l.strip() for l in m.group(1).split(",") if l.strip()}
    e = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", e)
    return e, labels
def metric_names(expr):
    m = re.match(r"^\s*label_values\((.*),\s*[A-Za-z_][A-Za-z0-9_]*\s*\)\s*$", expr, re.S)
    if m:
        expr = m.group(1)
    e, labels = strip_expr(expr)
    names = set()
    for m in re.finditer(r"(?<![\w$.])([A-Za-z_:][A-Za-z0-9_:]*)\b(\s*\()?", e):
        word, call = m.group(1), m.group(2)
        if call or word in FUNCS_AND_KEYWORDS or re.fullmatch(r"\d+[smhdwy]?", word):
            continue
        names.add(word)
    return names, labels

# --------------------------------------------------------------- dashboard
try:
    dash = json.load(open(os.environ["DASH"]))
    ok("epgate-dashboard.json parses")
except Exception as e:
    ko("epgate-dashboard.json parses", e)
    dash = {}
exprs = []
def walk(panels):
    for p in panels:
        for t in p.get("targets", []):
            if "expr" in t:
                exprs.append(("panel %r" % p.get("title"), t["expr"]))
        walk(p.get("panels", []))
walk(dash.get("panels", []))
n_panel_exprs = len(exprs)
for v in dash.get("templating", {}).get("list", []):
    if v.get("type") == "query":
        q = v.get("query")
        exprs.append(("variable $%s" % v.get("name"), q.get("query") if isinstance(q, dict) else q))
for a in dash.get("annotations", {}).get("list", []):
    if a.get("expr"):
        exprs.append(("annotation %r" % a.get("name"), a["expr"]))
check("dashboard: %d panel queries, %d in all" % (n_panel_exprs, len(exprs)), n_panel_exprs >= 8)
used, unknown, badlabels = set(), [], []
for where, e in exprs:
    names, labels = metric_names(e)
    used |= names
    if names - METRICS:
        unknown.append("%s: %s" % (where, ", ".join(sorted(names - METRICS))))
    if labels - LABELS:
        badlabels.append("%s: %s" % (where, ", ".join(sorted(labels - LABELS))))
    if not names:
        unknown.append("%s: names no metric: %s" % (where, e))
check("dashboard: every query names only epgate's metrics", not unknown, *unknown)
check("dashboard: every label in matchers and by() is one epgate's metrics carry", not badlabels, *badlabels)
need = {"epgate_endpoint_packets_total", "epgate_rule_hits_total", "epgate_conntrack_entries",
        "epgate_conntrack_allowance_available", "epgate_policy_generation"}
check("dashboard: shows endpoint packets, rule hits, conntrack and policy generation",
      need <= used, "missing: " + ", ".join(sorted(need - used)))
titles = " | ".join(p.get("title", "") for p in dash.get("panels", []))
for word in ("Accepted", "Rejected", "Top rules", "Flow table", "Policy generation"):
    check("dashboard: a panel about %s" % word, word in titles, titles)
# every query as a recording rule, for promtool check rules (valid PromQL)
subst = {"$__rate_interval": "5m", "$__range": "1h", "$__interval": "1m", "${__range}": "1h",
         "$instance": ".*", "$endpoint": ".*"}
rules = []
for i, (where, e) in enumerate(exprs):
    m = re.match(r"^\s*label_values\((.*),\s*[A-Za-z_][A-Za-z0-9_]*\s*\)\s*$", e, re.S)
    if m:
        e = m.group(1)
    for k, v in subst.items():
        e = e.replace(k, v)
    rules.append({"record": "dashboard:query_%d" % i, "expr": e})
yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]},
               open(os.path.join(os.environ["TMP"], "dashboard-rules.yml"), "w"))

# ------------------------------------------------------------------ alerts
try:
    alerts = yaml.safe_load(open(os.environ["ALERTS"]))
    arules = [r for g in alerts["groups"] for r in g["rules"] if "alert" in r]
    ok("alerts.yml parses: %d alerts" % len(arules))
except Exception as e:
    ko("alerts.yml parses", e)
    arules = []
unknown = []
for r in arules:
    names, _ = metric_names(r["expr"])
    if names - METRICS - {"up"}:
        unknown.append("%s: %s" % (r["alert"], ", ".join(sorted(names - METRICS - {"up"}))))
check("alerts: every expression names only epgate's metrics (and up)", not unknown, *unknown)
def alert_with(pred):
    return [r["alert"] for r in arules if pred(re.sub(r"\s+", " ", r["expr"]))]
want = {
    "conntrack allowance exceeded, increasing":
        lambda e: "epgate_conntrack_allowance_exceeded_total" in e and re.search(r"\b(increase|rate)\(", e),
    "conntrack allowance available low":
        lambda e: "epgate_conntrack_allowance_available" in e and "<" in e,
    "policy apply errors":
        lambda e: "epgate_policy_apply_errors_total" in e and re.search(r"\b(increase|rate)\(", e),
    "datapath detached (epgate_attached absent or 0)":
        lambda e: "epgate_attached" in e and ("absent(epgate_attached" in e) and ("unless" in e or "== 0" in e),
    "serve down (up == 0 or absent)":
        lambda e: re.search(r'up\{job=~?"epgate', e) and "== 0" in e,
}
for what, pred in want.items():
    names = alert_with(pred)
    check("alerts: %s (%s)" % (what, ", ".join(names) or "none"), names)
check("alerts: each has a severity label and a summary",
      all(r.get("labels", {}).get("severity") and r.get("annotations", {}).get("summary") for r in arules))

# ------------------------------------------------------------------ scrape
try:
    scrape = yaml.safe_load(open(os.environ["SCRAPE"]))
    jobs = scrape["scrape_configs"]
    ok("scrape.yml parses: jobs %s" % ", ".join(j["job_name"] for j in jobs))
except Exception as e:
    ko("scrape.yml parses", e)
    jobs = []
check("scrape: every job is named epgate* (the alerts select job=~\"epgate.*\")",
      jobs and all(j["job_name"].startswith("epgate") for j in jobs))
k8s = [j for j in jobs if "kubernetes_sd_configs" in j]
keep = k8s and any(r.get("action") == "keep" and
                   r.get("source_labels") == ["__meta_kubernetes_pod_annotation_prometheus_io_scrape"]
                   for r in k8s[0].get("relabel_configs", []))
check("scrape: a kubernetes pod job keeping pods annotated prometheus.io/scrape",
      k8s and k8s[0]["kubernetes_sd_configs"][0].get("role") == "pod" and keep)
# the full configuration promtool checks: rule files, scrape configs, and a
# file_sd targets file in the documented format
hosts = os.path.join(os.environ["TMP"], "epgate-hosts.yml")
yaml.safe_dump([{"targets": ["10.0.0.5:9745", "10.0.0.6:9745"]}], open(hosts, "w"))
for j in jobs:
    for f in j.get("file_sd_configs", []):
        f["files"] = [hosts]
def write_cfg(name, jobs):
    cfg = {"global": {"scrape_interval": "30s", "evaluation_interval": "30s"},
           "rule_files": [os.path.abspath(os.environ["ALERTS"])], "scrape_configs": jobs}
    yaml.safe_dump(cfg, open(os.path.join(os.environ["TMP"], name), "w"))
write_cfg("prometheus.yml", jobs)
# Debian's Prometheus is built without Kubernetes service discovery: the same
# configuration with the pod discovery replaced by a static target, so that
# promtool still checks everything else (relabelling regexes and actions).
import copy
jobs2 = copy.deepcopy(jobs)
for j in jobs2:
    if j.pop("kubernetes_sd_configs", None) is not None:
        j["static_configs"] = [{"targets": ["node-1:9745"]}]
write_cfg("prometheus-static.yml", jobs2)
EOF
py_rc=$?
cat "$TMP/py.out"
pass=$((pass + $(grep -c '^ok ' "$TMP/py.out")))
fail=$((fail + $(grep -c '^FAIL ' "$TMP/py.out")))
[ "$py_rc" -eq 0 ] || ko "the python checks exited with status $py_rc"

# ---- the DaemonSet's start-up script, run with stand-ins
if [ -s "$TMP/main.sh" ] && sh -n "$TMP/main.sh" 2>"$TMP/sh.err"; then
	ok "epgate container: its shell script parses (sh -n)"
else
	ko "epgate container: its shell script does not parse" "$(cat "$TMP/sh.err" 2>/dev/null)"
fi
if [ -s "$TMP/init.sh" ] && sh -n "$TMP/init.sh"; then
	ok "init container: its shell script parses (sh -n)"
else
	ko "init container: its shell script does not parse"
fi
# The argv it gives epgate: /usr/sbin/epgate replaced by printf.
argv() { sed 's|exec /usr/sbin/epgate|exec printf "%s\\n"|' "$TMP/main.sh" >"$TMP/main-echo.sh" &&
	env -i PATH=/usr/bin:/bin "$@" sh "$TMP/main-echo.sh" | tr '\n' ' '; }
got=$(argv EPGATE_INTERFACES="eth0 ens5:skb" EPGATE_OPTS="" POD_IP=10.0.0.5)
want='serve --interface eth0 --interface ens5:skb --listen 10.0.0.5:9745 --flow-log - --config /etc/epgate/*.json '
if [ "$got" = "$want" ]; then ok "epgate container: argv for eth0, ens5:skb on 10.0.0.5: $got"; else ko "epgate container: argv" "got:  $got" "want: $want"; fi
got=$(argv EPGATE_INTERFACES="eth0" EPGATE_OPTS="--flow-log-interval 600" POD_IP=fd00::5)
want='serve --interface eth0 --listen [fd00::5]:9745 --flow-log - --flow-log-interval 600 --config /etc/epgate/*.json '
if [ "$got" = "$want" ]; then ok "epgate container: IPv6 pod address in brackets, EPGATE_OPTS passed: $got"; else ko "epgate container: argv (IPv6)" "got:  $got" "want: $want"; fi
# every option it passes is one 'epgate serve --help' documents
BIN=${BUILD:-build}/epgate
if [ -x "$BIN" ]; then
	doc=$("$BIN" serve --help)
	bad=()
	for o in $(grep -oE -- '--[a-z][a-z-]*' "$TMP/main.sh" | sort -u); do
		grep -qF -- "$o" <<<"$doc" || bad+=("$o")
	done
	if [ ${#bad[@]} -eq 0 ]; then ok "epgate container: every option is in 'epgate serve --help'"; else ko "epgate container: options unknown to serve: ${bad[*]}"; fi
else
	ko "epgate container: $BIN is not built (make), cannot compare with 'epgate serve --help'"
fi

# ---- promtool
if out=$(promtool check rules "$ALERTS" 2>&1); then
	ok "promtool check rules $ALERTS: $(grep -o 'SUCCESS.*' <<<"$out" | head -n 1)"
else
	ko "promtool check rules $ALERTS" "$out"
fi
if out=$(promtool test rules "$ALERTS_TEST" 2>&1); then
	ok "promtool test rules $ALERTS_TEST (each alert fires for its node, none for the healthy one)"
else
	ko "promtool test rules $ALERTS_TEST" "$out"
fi
if out=$(promtool check config "$TMP/prometheus.yml" 2>&1); then
	ok "promtool check config: a prometheus.yml with scrape.yml's jobs and alerts.yml"
elif grep -q 'field kubernetes_sd_configs not found' <<<"$out"; then
	if out2=$(promtool check config "$TMP/prometheus-static.yml" 2>&1); then
		ok "promtool check config: scrape.yml's jobs and alerts.yml (this promtool has no Kubernetes discovery: checked with a static target in its place)"
	else
		ko "promtool check config (pod discovery replaced by a static target)" "$out2"
	fi
else
	ko "promtool check config" "$out"
fi
if out=$(promtool check rules "$TMP/dashboard-rules.yml" 2>&1); then
	ok "promtool: every dashboard query is valid PromQL ($(grep -o '[0-9]* rules found' <<<"$out"))"
else
	ko "promtool: dashboard queries that are not valid PromQL" "$out"
fi
