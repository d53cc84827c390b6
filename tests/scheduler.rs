//! Sweeps as plans: `plan`, `run-plan`, `merge`, and the job files for Slurm and Kubernetes.
//! The Slurm test brings up a real single-node cluster (munge, slurmctld, slurmd from Debian's
//! packages, configured in a temporary folder) and is ignored without one: tests/run_all.sh
//! installs the packages and runs it.
// Tests may unwrap: a panic is how a test fails.
#![allow(clippy::unwrap_used)]

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use common::*;
use quantbench::session::Session;

fn ok(out: std::process::Output) -> String {
    assert!(
        out.status.success(),
        "failed: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `plan` (or `sweep`) arguments shared by the plan and the local sweep it must equal.
fn sweep_args<'a>(model: &'a str, data: &'a str, configs: &'a str) -> Vec<&'a str> {
    vec![
        model,
        "--data",
        data,
        "--preset",
        configs,
        "--backends",
        "tract,ort",
        "--eval-limit",
        "400",
        "--runs",
        "3",
    ]
}

/// Two int8 configs (a `.ron` list) and the float baseline.
fn configs(dir: &Path) -> PathBuf {
    let path = dir.join("configs.ron");
    std::fs::write(
        &path,
        "[(mode: Int8Weights, per_channel: true), (mode: Int8, per_channel: false, samples: 64)]",
    )
    .unwrap();
    path
}

fn plan(dir: &Path, out: &Path, extra: &[&str]) -> String {
    let (m, d, c) = (mnist_model(), mnist_data(), configs(dir));
    let mut args = vec!["plan"];
    args.extend(sweep_args(
        m.to_str().unwrap(),
        d.to_str().unwrap(),
        c.to_str().unwrap(),
    ));
    args.extend(["--out", out.to_str().unwrap()]);
    args.extend(extra);
    ok(run(&args, dir))
}

fn local_sweep(dir: &Path) -> Session {
    let (m, d, c) = (mnist_model(), mnist_data(), configs(dir));
    let out = dir.join("local.ron");
    let mut args = vec!["sweep"];
    args.extend(sweep_args(
        m.to_str().unwrap(),
        d.to_str().unwrap(),
        c.to_str().unwrap(),
    ));
    args.extend(["--out", out.to_str().unwrap()]);
    ok(run(&args, dir));
    Session::load(&out).unwrap()
}

/// Experiment, runtime, top-1, agreement, SQNR, samples.
type Figures = (String, String, Option<f64>, Option<f64>, Option<f64>, usize);

/// Accuracy and fidelity of every experiment on every runtime (latency is the machine's).
fn figures(s: &Session) -> Vec<Figures> {
    let mut out = vec![];
    for e in &s.experiments {
        assert!(e.result.error.is_none(), "{}: {:?}", e.name, e.result.error);
        for b in &e.result.evals {
            let r = &b.report;
            out.push((
                e.name.clone(),
                b.backend.clone(),
                r.top1,
                r.agreement,
                r.sqnr_db,
                r.samples,
            ));
        }
    }
    out
}

#[test]
fn a_plan_run_index_by_index_merges_into_the_local_sweep() {
    let dir = tempfile::tempdir().unwrap();
    let plan_dir = dir.path().join("plan");
    let printed = plan(dir.path(), &plan_dir, &[]);
    assert!(printed.contains("plan of 3 experiments"), "{printed}");
    // Self-contained: the model is copied, its hash recorded.
    assert!(plan_dir.join("model.onnx").exists());

    // Nothing run yet: the merge is all pending, and says so.
    let merged = dir.path().join("merged.ron");
    let m = merged.to_str().unwrap();
    let p = plan_dir.to_str().unwrap();
    let out = run(&["merge", p, "--out", m], dir.path());
    assert!(String::from_utf8_lossy(&out.stderr).contains("0 of 3 experiments finished"));

    // Indices in any order; the scheduler's variable stands in for --index; a second run of
    // an index is harmless (its result is kept, not recomputed).
    for index in [2, 0] {
        ok(run(
            &["run-plan", p, "--index", &index.to_string()],
            dir.path(),
        ));
    }
    let before = std::fs::read(plan_dir.join("results/2.ron")).unwrap();
    let again = run(&["run-plan", p, "--index", "2"], dir.path());
    assert!(String::from_utf8_lossy(&again.stderr).contains("already done"));
    assert_eq!(
        std::fs::read(plan_dir.join("results/2.ron")).unwrap(),
        before
    );
    let out = std::process::Command::new(bin())
        .args(["run-plan", p])
        .env("JOB_COMPLETION_INDEX", "1")
        .output()
        .unwrap();
    ok(out);

    let out = run(&["merge", p, "--out", m], dir.path());
    assert!(String::from_utf8_lossy(&out.stderr).contains("3 of 3 experiments finished"));
    let merged = Session::load(&merged).unwrap();
    let local = local_sweep(dir.path());
    let (a, b) = (figures(&merged), figures(&local));
    assert_eq!(a.len(), 6, "{a:?}");
    assert_eq!(a, b);
    // Each benchmark says where it ran.
    for e in &merged.experiments {
        for bench in &e.result.benches {
            assert!(!bench.machine.host.is_empty() && bench.machine.cores > 0);
        }
    }
}

#[test]
fn run_plan_refuses_a_wrong_index_a_changed_model_and_a_folder_that_is_no_plan() {
    let dir = tempfile::tempdir().unwrap();
    let plan_dir = dir.path().join("plan");
    plan(dir.path(), &plan_dir, &[]);
    let p = plan_dir.to_str().unwrap();
    let fails = |args: &[&str], want: &str| {
        let out = run(args, dir.path());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        assert!(stderr.contains(want), "{stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
    };
    fails(&["run-plan", p, "--index", "3"], "index 3 is out of range");
    let nowhere = dir.path().join("nowhere");
    fails(
        &["run-plan", nowhere.to_str().unwrap(), "--index", "0"],
        "plan.ron: cannot read",
    );
    // A model swapped under the plan is refused, not measured.
    std::fs::copy(rapid_model(), plan_dir.join("model.onnx")).unwrap();
    fails(
        &["run-plan", p, "--index", "0"],
        "is not the model the plan was written for",
    );
    assert!(!plan_dir.join("results/0.ron").exists());
    // A second plan over a folder with results would mix two sweeps: refused.
    std::fs::write(plan_dir.join("results/0.ron"), "()").unwrap();
    let (m, d, c) = (mnist_model(), mnist_data(), configs(dir.path()));
    let mut args = vec!["plan"];
    args.extend(sweep_args(
        m.to_str().unwrap(),
        d.to_str().unwrap(),
        c.to_str().unwrap(),
    ));
    args.extend(["--out", p]);
    fails(&args, "holds the results of an earlier plan");
}

#[test]
fn the_kubernetes_manifest_is_a_valid_indexed_job_of_every_index() {
    let dir = tempfile::tempdir().unwrap();
    let plan_dir = dir.path().join("plan");
    plan(
        dir.path(),
        &plan_dir,
        &[
            "--emit",
            "kubernetes,slurm",
            "--image",
            "registry.example/quantbench:0.1",
            "--data-claim",
            "datasets",
            "--parallelism",
            "2",
            "--cpus-per-task",
            "2",
        ],
    );
    let manifest = plan_dir.join("kubernetes-job.yaml");
    // Against the Kubernetes API's own schema for batch/v1 Job (kubernetes-validate bundles
    // it), strict: an unknown or misspelt field fails too.
    let out = Command::new("kubernetes-validate")
        .args(["--strict", "--kubernetes-version", "1.30.0"])
        .arg(&manifest)
        .output()
        .expect("kubernetes-validate (pip install kubernetes-validate; tests/run_all.sh does)");
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(&manifest).unwrap();
    for line in [
        "kind: \"Job\"",
        "completionMode: \"Indexed\"",
        "completions: 3",
        "parallelism: 2",
        "image: \"registry.example/quantbench:0.1\"",
        "claimName: \"datasets\"",
        "mountPath: \"/plan\"",
        "- \"run-plan\"",
    ] {
        assert!(text.contains(line), "{line} not in\n{text}");
    }
    // The pod's index comes from JOB_COMPLETION_INDEX, which run-plan reads: no --index.
    assert!(!text.contains("--index"), "{text}");
    let script = std::fs::read_to_string(plan_dir.join("slurm.sbatch")).unwrap();
    assert!(script.contains("#SBATCH --array=0-2\n"), "{script}");
    assert!(script.contains("#SBATCH --cpus-per-task=2\n"), "{script}");
    assert!(script.contains(" run-plan "), "{script}");
}

/// A daemon of the test cluster, stopped (and reaped) when dropped.
struct Daemon {
    name: &'static str,
    child: Child,
    log: std::sync::Arc<std::sync::Mutex<String>>,
}

impl Daemon {
    /// Starts `command` and waits until its log (stderr) shows `ready`; fails with the log if
    /// it ends first.
    fn start(name: &'static str, command: &mut Command, ready: &str) -> Daemon {
        let mut child = command
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("{name}: cannot start: {e}"));
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let log = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        loop {
            match lines.next() {
                Some(Ok(line)) => {
                    log.lock().unwrap().push_str(&(line.clone() + "\n"));
                    if line.contains(ready) {
                        break;
                    }
                }
                _ => panic!("{name} ended before it was ready:\n{}", log.lock().unwrap()),
            }
        }
        // Keep draining its log, so that it never blocks on a full pipe.
        let sink = log.clone();
        std::thread::Builder::new()
            .name(format!("{name}-log"))
            .spawn(move || {
                for line in lines.map_while(Result::ok) {
                    sink.lock().unwrap().push_str(&(line + "\n"));
                }
            })
            .unwrap();
        Daemon { name, child, log }
    }

    fn log(&self) -> String {
        format!("--- {} ---\n{}", self.name, self.log.lock().unwrap())
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn command_output(program: &str, args: &[&str]) -> String {
    let out = Command::new(program).args(args).output().unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A single-node Slurm cluster in `root` (munge with a throwaway key, slurmctld, slurmd on free
/// ports), stopped when dropped; its config file.
struct Cluster {
    conf: std::path::PathBuf,
    // Dropped (stopped) in this order: the node, the controller, then munge they both use.
    slurmd: Daemon,
    ctld: Daemon,
    munge: Daemon,
}

impl Cluster {
    fn start(root: &Path) -> Cluster {
        for sub in ["munge", "state", "spool", "log"] {
            std::fs::create_dir_all(root.join(sub)).unwrap();
        }
        // munge: a throwaway key, its own socket.
        use std::os::unix::fs::PermissionsExt;
        let key: Vec<u8> = (0..1024u32)
            .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
            .collect();
        let key_path = root.join("munge/munge.key");
        std::fs::write(&key_path, key).unwrap();
        std::fs::set_permissions(&key_path, std::fs::Permissions::from_mode(0o400)).unwrap();
        std::fs::set_permissions(root.join("munge"), std::fs::Permissions::from_mode(0o711))
            .unwrap();
        let socket = root.join("munge/munge.sock");
        let munge = Daemon::start(
            "munged",
            Command::new("munged")
                .arg("--foreground")
                .arg("--force")
                .arg(format!("--key-file={}", key_path.display()))
                .arg(format!("--socket={}", socket.display()))
                .arg(format!(
                    "--pid-file={}",
                    root.join("munge/munged.pid").display()
                ))
                .arg(format!("--seed-file={}", root.join("munge/seed").display()))
                .arg(format!(
                    "--log-file={}",
                    root.join("log/munged.log").display()
                )),
            "work threads",
        );
        let host = command_output("hostname", &[]);
        let conf = root.join("slurm.conf");
        std::fs::write(&conf, slurm_conf(root, &host, &socket)).unwrap();
        let ctld = Daemon::start(
            "slurmctld",
            Command::new("slurmctld")
                .args(["-D", "-i", "-f"])
                .arg(&conf)
                .env("SLURM_CONF", &conf),
            "Running as primary controller",
        );
        let slurmd = Daemon::start(
            "slurmd",
            Command::new("slurmd")
                .args(["-D", "-N", &host, "-f"])
                .arg(&conf)
                .env("SLURM_CONF", &conf),
            "slurmd started",
        );
        Cluster {
            conf,
            slurmd,
            ctld,
            munge,
        }
    }

    fn logs(&self) -> String {
        format!(
            "{}\n{}\n{}",
            self.munge.log(),
            self.ctld.log(),
            self.slurmd.log()
        )
    }
}

fn slurm_conf(root: &Path, host: &str, socket: &Path) -> String {
    let user = command_output("id", &["-un"]);
    let cpus = std::thread::available_parallelism().unwrap().get();
    let r = root.display();
    format!(
        "ClusterName=quantbench-test
SlurmctldHost={host}(127.0.0.1)
SlurmctldPort={ctld_port}
SlurmdPort={slurmd_port}
SlurmUser={user}
SlurmdUser={user}
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={socket}
StateSaveLocation={r}/state
SlurmdSpoolDir={r}/spool
SlurmctldPidFile={r}/slurmctld.pid
SlurmdPidFile={r}/slurmd.pid
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SchedulerType=sched/builtin
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
MpiDefault=none
SwitchType=switch/none
ReturnToService=2
InactiveLimit=0
Waittime=0
NodeName={host} NodeAddr=127.0.0.1 CPUs={cpus} State=UNKNOWN
PartitionName=test Nodes={host} Default=YES MaxTime=INFINITE State=UP
",
        ctld_port = free_port(),
        slurmd_port = free_port(),
        socket = socket.display(),
    )
}

#[test]
#[ignore = "needs munge and Slurm (slurm-wlm): tests/run_all.sh installs them and runs it"]
fn a_slurm_array_job_runs_the_plan_and_its_merge_equals_the_local_sweep() {
    let started = std::time::Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let cluster = Cluster::start(root);
    let conf = cluster.conf.clone();
    let logs = || cluster.logs();

    let plan_dir = root.join("plan");
    plan(
        root,
        &plan_dir,
        &[
            "--emit",
            "slurm",
            "--cpus-per-task",
            "1",
            "--time-limit",
            "00:10:00",
        ],
    );
    let submitted = std::time::Instant::now();
    // --wait: sbatch returns when every task of the array has ended (no polling here).
    let out = Command::new("sbatch")
        .arg("--wait")
        .arg(plan_dir.join("slurm.sbatch"))
        .env("SLURM_CONF", &conf)
        .output()
        .unwrap();
    let task_logs: String = std::fs::read_dir(plan_dir.join("logs"))
        .map(|entries| {
            entries
                .flatten()
                .map(|e| std::fs::read_to_string(e.path()).unwrap_or_default())
                .collect()
        })
        .unwrap_or_default();
    assert!(
        out.status.success(),
        "sbatch: {}{}\ntasks:\n{task_logs}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        logs()
    );
    let round_trip = submitted.elapsed();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("Submitted batch job"), "{stdout}");
    for index in 0..3 {
        let result = plan_dir.join(format!("results/{index}.ron"));
        assert!(
            result.exists(),
            "no result {index}\n{task_logs}\n{}",
            logs()
        );
        let text = std::fs::read_to_string(&result).unwrap();
        assert!(text.contains("job: Some(\"slurm "), "{text}");
    }
    let merged = root.join("merged.ron");
    ok(run(
        &[
            "merge",
            plan_dir.to_str().unwrap(),
            "--out",
            merged.to_str().unwrap(),
        ],
        root,
    ));
    let merged = Session::load(&merged).unwrap();
    let local = local_sweep(root);
    assert_eq!(figures(&merged), figures(&local));
    eprintln!(
        "slurm: 3 array tasks submitted, completed and merged; sbatch --wait took {:.1} s, the whole test {:.1} s",
        round_trip.as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
}

/// An SSH server on a free port of this machine, with a throwaway host key and a throwaway
/// user key; the `ssh`/`scp` options that reach it.
struct SshServer {
    _daemon: Daemon,
    destination: String,
    ssh_args: Vec<String>,
}

fn ssh_server(dir: &Path) -> SshServer {
    let keygen = |name: &str| {
        let path = dir.join(name);
        let out = Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-f"])
            .arg(&path)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        path
    };
    let (host_key, user_key) = (keygen("host_key"), keygen("user_key"));
    let authorized = dir.join("authorized_keys");
    std::fs::copy(user_key.with_extension("pub"), &authorized).unwrap();
    let port = free_port();
    let config = dir.join("sshd_config");
    std::fs::write(
        &config,
        format!(
            "Port {port}
ListenAddress 127.0.0.1
HostKey {}
AuthorizedKeysFile {}
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
StrictModes no
UsePAM no
PidFile {}
Subsystem sftp internal-sftp
SetEnv ORT_DYLIB_PATH={}
",
            host_key.display(),
            authorized.display(),
            dir.join("sshd.pid").display(),
            // The device's ONNX Runtime: this machine's, which a login shell would not find
            // (it lives in the test venv).
            quantbench::runtime::ort::find_library()
                .map(|p| p.display().to_string())
                .unwrap_or_default()
        ),
    )
    .unwrap();
    // sshd's privilege separation needs its empty folder (the package's service makes it).
    let _ = std::fs::create_dir_all("/run/sshd");
    let daemon = Daemon::start(
        "sshd",
        Command::new("/usr/sbin/sshd")
            .args(["-D", "-e", "-f"])
            .arg(&config),
        "Server listening on",
    );
    let user = command_output("id", &["-un"]);
    SshServer {
        _daemon: daemon,
        destination: format!("{user}@127.0.0.1:{port}"),
        ssh_args: vec![
            "-i".into(),
            user_key.display().to_string(),
            "-oUserKnownHostsFile=".to_string() + &dir.join("known_hosts").display().to_string(),
            "-oStrictHostKeyChecking=accept-new".into(),
        ],
    }
}

fn bench_json(args: &[&str], dir: &Path) -> serde_json::Value {
    serde_json::from_str(&ok(run(args, dir))).unwrap()
}

#[test]
#[ignore = "needs an SSH server (openssh-server): tests/run_all.sh installs it and runs this"]
fn a_remote_bench_over_ssh_times_the_model_on_the_device_and_records_it() {
    let dir = tempfile::tempdir().unwrap();
    let server = ssh_server(dir.path());
    let model = mnist_model();
    let m = model.to_str().unwrap();
    let quantbench = bin();
    let mut remote = vec![
        "--remote".to_string(),
        server.destination.clone(),
        "--remote-bin".into(),
        quantbench.display().to_string(),
    ];
    for a in &server.ssh_args {
        remote.push(format!("--ssh-arg={a}"));
    }
    let runs = ["--runs", "300", "--warmup", "20", "--json"];
    // Side by side in one run: local, remote, local again (the two local runs bound the noise).
    let local_a = bench_json(&[&["bench", m][..], &runs].concat(), dir.path());
    let remote_args: Vec<&str> = remote.iter().map(String::as_str).collect();
    let there = bench_json(
        &[&["bench", m][..], &runs, &remote_args].concat(),
        dir.path(),
    );
    let local_b = bench_json(&[&["bench", m][..], &runs].concat(), dir.path());
    let ms = |v: &serde_json::Value, k: &str| v[k].as_f64().unwrap();
    // The noise band: the device is this machine and the binary the same, so the median over
    // SSH lies within 25% of the two local medians that bracket it in time (measured here: a
    // few percent apart). A remote figure that counted the copy or the SSH round trip
    // (milliseconds on a 0.03 ms model) would be far outside.
    const BAND: f64 = 0.25;
    let (lo, hi) = (
        ms(&local_a, "p50_ms").min(ms(&local_b, "p50_ms")),
        ms(&local_a, "p50_ms").max(ms(&local_b, "p50_ms")),
    );
    let p50 = ms(&there, "p50_ms");
    eprintln!(
        "remote bench: p50 local {:.4} / {:.4} ms, over SSH {p50:.4} ms ({:+.1}% of the nearer local median)",
        ms(&local_a, "p50_ms"),
        ms(&local_b, "p50_ms"),
        100.0 * if p50 < lo { p50 / lo - 1.0 } else if p50 > hi { p50 / hi - 1.0 } else { 0.0 }
    );
    assert!(
        p50 >= lo * (1.0 - BAND) && p50 <= hi * (1.0 + BAND),
        "p50 over SSH {p50} ms outside {}% of the local medians {lo}..{hi}",
        100.0 * BAND
    );
    assert_eq!(there["runs"], 300);
    // The device's details come from the device.
    let device = &there["machine"];
    assert_eq!(device["cpu"], local_a["machine"]["cpu"]);
    assert_eq!(device["cores"], local_a["machine"]["cores"]);
    assert_eq!(device["int8_features"], local_a["machine"]["int8_features"]);
    assert!(!device["host"].as_str().unwrap().is_empty());
    let warnings = there["warnings"].to_string();
    assert!(warnings.contains("over SSH"), "{warnings}");
    assert_eq!(there["device"], server.destination.as_str());
    assert_eq!(local_a["device"], serde_json::Value::Null);

    remote_sweep_matches_the_local_one(dir.path(), m, &remote_args, &server.destination);
    // Nothing is left on the device.
    let leftovers = std::fs::read_dir(std::env::temp_dir())
        .unwrap()
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with("quantbench-bench.")
        })
        .count();
    assert_eq!(leftovers, 0);

    // A device without quantbench (and without ONNX Runtime's Python package on its PATH):
    // a clear error, not a hang or a panic.
    let mut missing = remote_args.clone();
    missing[3] = "/nonexistent/quantbench";
    let out = run(&[&["bench", m][..], &runs, &missing].concat(), dir.path());
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    if out.status.success() {
        // The device's Python has ONNX Runtime: timed by it, and said so.
        assert!(stdout.contains("timed by ONNX Runtime"), "{stdout}");
    } else {
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        assert!(stderr.contains("has neither"), "{stderr}");
    }
}

/// A sweep pointed at the device: its accuracy is the local sweep's (measured here, the same
/// values), every latency comes from the device and says so.
fn remote_sweep_matches_the_local_one(
    dir: &Path,
    m: &str,
    remote_args: &[&str],
    destination: &str,
) {
    let (d, c) = (mnist_data(), configs(dir));
    let remote_sweep = dir.join("remote.ron");
    let mut args = vec!["sweep"];
    args.extend(sweep_args(m, d.to_str().unwrap(), c.to_str().unwrap()));
    args.extend(["--out", remote_sweep.to_str().unwrap()]);
    args.extend(remote_args);
    ok(run(&args, dir));
    let remote_session = Session::load(&remote_sweep).unwrap();
    let local_session = local_sweep(dir);
    assert_eq!(figures(&remote_session), figures(&local_session));
    for (r, l) in remote_session
        .experiments
        .iter()
        .zip(&local_session.experiments)
    {
        for (rb, lb) in r.result.benches.iter().zip(&l.result.benches) {
            eprintln!(
                "remote sweep: {} on {}: p50 here {:.4} ms, on the device {:.4} ms",
                r.name, rb.backend, lb.p50_ms, rb.p50_ms
            );
        }
    }
    let benches: Vec<_> = remote_session
        .experiments
        .iter()
        .flat_map(|e| &e.result.benches)
        .collect();
    assert_eq!(benches.len(), 3 * 2, "three experiments on two runtimes");
    for b in benches {
        assert_eq!(b.device.as_deref(), Some(destination));
        assert!(b.device_label().ends_with(&format!(
            "over SSH ({}, {} cores)",
            b.machine.cpu, b.machine.cores
        )));
    }
}
