//! Deployment files: the image ships every binary, the Kubernetes manifests validate against the
//! Kubernetes schemas and are locked down, compose references only what exists, and the binaries
//! start with the environment the manifests give them.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::binaries::binary;
use pricecast_tests::db::TestDb;
use pricecast_tests::fake_binance::FakeBinance;

/// Packages whose binaries the image must ship (the bench binary is a developer tool).
const SHIPPED_PACKAGES: [&str; 2] = ["pricecast-jobs", "pricecast-api"];

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

fn python() -> String {
    std::env::var("PRICECAST_TEST_PYTHON").expect(
        "PRICECAST_TEST_PYTHON is not set: run tests/run.sh, which installs the Python tools",
    )
}

/// The binaries the workspace builds for shipping, from `cargo metadata`.
pub fn workspace_binaries() -> BTreeSet<String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let output = Command::new(cargo)
        .args([
            "metadata",
            "--no-deps",
            "--format-version",
            "1",
            "--offline",
        ])
        .current_dir(repo_root())
        .output()
        .expect("cargo metadata");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let metadata: Value = serde_json::from_slice(&output.stdout).expect("metadata JSON");
    metadata["packages"]
        .as_array()
        .expect("packages")
        .iter()
        .filter(|p| SHIPPED_PACKAGES.contains(&p["name"].as_str().unwrap_or_default()))
        .flat_map(|p| p["targets"].as_array().cloned().unwrap_or_default())
        .filter(|t| {
            t["kind"]
                .as_array()
                .is_some_and(|k| k.iter().any(|k| k == "bin"))
        })
        .filter_map(|t| t["name"].as_str().map(str::to_owned))
        .collect()
}

/// The binaries the Dockerfile copies into the runtime image.
fn image_binaries() -> BTreeSet<String> {
    let dockerfile =
        std::fs::read_to_string(repo_root().join("docker/Dockerfile")).expect("Dockerfile");
    dockerfile
        .split_whitespace()
        .filter_map(|word| word.strip_prefix("/src/target/release/"))
        .map(|name| name.trim_end_matches('\\').to_owned())
        .collect()
}

#[test]
fn the_image_ships_exactly_the_workspace_binaries() {
    let workspace = workspace_binaries();
    assert!(workspace.contains("pricecast-collect"), "{workspace:?}");
    assert_eq!(
        image_binaries(),
        workspace,
        "docker/Dockerfile must copy every binary of {SHIPPED_PACKAGES:?} (and nothing else)"
    );
}

fn yaml_documents(path_or_stdin: &str, stdin: Option<&[u8]>) -> Vec<Value> {
    let mut child = Command::new(python())
        .arg(repo_root().join("tests/python/yaml_to_json.py"))
        .arg(path_or_stdin)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run yaml_to_json.py");
    if let Some(input) = stdin {
        use std::io::Write as _;
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(input)
            .expect("write YAML");
    }
    let output = child.wait_with_output().expect("yaml_to_json.py output");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("JSON documents")
}

fn kustomize(dir: &str) -> Vec<u8> {
    let output = Command::new("kubectl")
        .args(["kustomize", dir])
        .current_dir(repo_root())
        .output()
        .expect("kubectl kustomize (kubectl is installed by .ci/run)");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    output.stdout
}

/// Every pod template in a manifest, with where it sits.
fn pod_specs(document: &Value) -> Vec<&Value> {
    match document["kind"].as_str() {
        Some("CronJob") => vec![&document["spec"]["jobTemplate"]["spec"]["template"]["spec"]],
        Some("Job" | "Deployment") => vec![&document["spec"]["template"]["spec"]],
        _ => Vec::new(),
    }
}

#[test]
fn kubernetes_manifests_validate_and_are_locked_down() {
    let shipped = image_binaries();
    for dir in [
        "k8s/base",
        "k8s/overlays/production",
        "k8s/overlays/sharded",
    ] {
        let rendered = kustomize(dir);
        let manifest = std::env::temp_dir().join(format!(
            "pricecast-{}-{}.yaml",
            dir.replace('/', "-"),
            std::process::id()
        ));
        std::fs::write(&manifest, &rendered).expect("write manifest");
        let validator = Path::new(&python()).with_file_name("kubernetes-validate");
        let validate = Command::new(&validator)
            .args(["--strict", "--quiet"])
            .arg(&manifest)
            .output()
            .expect("kubernetes-validate");
        assert!(
            validate.status.success(),
            "{dir} does not validate:\n{}{}",
            String::from_utf8_lossy(&validate.stdout),
            String::from_utf8_lossy(&validate.stderr)
        );
        let _ = std::fs::remove_file(&manifest);

        let documents = yaml_documents("-", Some(&rendered));
        let kinds: BTreeSet<&str> = documents
            .iter()
            .filter_map(|d| d["kind"].as_str())
            .collect();
        for kind in [
            "ConfigMap",
            "CronJob",
            "Deployment",
            "Service",
            "PodDisruptionBudget",
            "Job",
        ] {
            assert!(kinds.contains(kind), "{dir} has no {kind}");
        }
        let mut pods = 0;
        for document in &documents {
            let name = document["metadata"]["name"].as_str().unwrap_or_default();
            if document["kind"] == "CronJob" {
                assert_eq!(document["spec"]["concurrencyPolicy"], "Forbid", "{name}");
                assert!(
                    document["spec"]["startingDeadlineSeconds"].is_u64(),
                    "{name}"
                );
                assert!(
                    document["spec"]["successfulJobsHistoryLimit"].is_u64(),
                    "{name}"
                );
                assert!(
                    document["spec"]["failedJobsHistoryLimit"].is_u64(),
                    "{name}"
                );
            }
            for pod in pod_specs(document) {
                pods += 1;
                assert_eq!(pod["securityContext"]["runAsNonRoot"], true, "{name}");
                let containers = pod["containers"].as_array().expect("containers");
                for container in containers {
                    let security = &container["securityContext"];
                    assert_eq!(security["readOnlyRootFilesystem"], true, "{name}");
                    assert_eq!(security["allowPrivilegeEscalation"], false, "{name}");
                    assert_eq!(security["capabilities"]["drop"][0], "ALL", "{name}");
                    assert!(container["resources"]["limits"].is_object(), "{name}");
                    let program = container["command"][0].as_str().expect("command");
                    assert!(
                        shipped.contains(program),
                        "{name} runs {program}, which the image does not ship"
                    );
                }
            }
        }
        assert!(pods >= 3, "{dir}: only {pods} pod templates");
    }
}

#[test]
fn the_sharded_overlay_runs_each_shard_as_one_pod_of_an_indexed_job() {
    let documents = yaml_documents("-", Some(&kustomize("k8s/overlays/sharded")));
    let mut sharded = BTreeSet::new();
    for document in documents.iter().filter(|d| d["kind"] == "CronJob") {
        let name = document["metadata"]["name"].as_str().expect("name");
        let job = &document["spec"]["jobTemplate"]["spec"];
        let env = &job["template"]["spec"]["containers"][0]["env"];
        let shards = env
            .as_array()
            .into_iter()
            .flatten()
            .find(|e| e["name"] == "PRICECAST_SHARDS")
            .and_then(|e| e["value"].as_str())
            .map(|v| v.parse::<u64>().expect("PRICECAST_SHARDS is a number"));
        let Some(shards) = shards else {
            assert!(
                job["completionMode"].is_null(),
                "{name} is indexed but not sharded"
            );
            continue;
        };
        assert!(shards > 1, "{name}");
        assert_eq!(job["completionMode"], "Indexed", "{name}");
        // Every index runs at once, one pod per shard: JOB_COMPLETION_INDEX is 0..shards.
        assert_eq!(job["completions"].as_u64(), Some(shards), "{name}");
        assert_eq!(job["parallelism"].as_u64(), Some(shards), "{name}");
        assert_eq!(document["spec"]["concurrencyPolicy"], "Forbid", "{name}");
        sharded.insert(name.to_owned());
    }
    let expected: BTreeSet<String> = ["collect", "export", "features", "train"]
        .iter()
        .map(|job| format!("pricecast-{job}"))
        .collect();
    assert_eq!(sharded, expected);
}

#[test]
fn compose_runs_only_shipped_binaries_with_documented_variables() {
    let compose = yaml_documents(
        &repo_root()
            .join("docker/compose.yaml")
            .display()
            .to_string(),
        None,
    );
    // Every variable is documented in the configuration reference.
    let reference = std::fs::read_to_string(repo_root().join("docs/CONFIGURATION.md"))
        .expect("docs/CONFIGURATION.md");
    let example = std::fs::read_to_string(repo_root().join(".env.example")).expect(".env.example");
    let shipped = image_binaries();
    let services = compose[0]["services"].as_object().expect("services");
    let mut pricecast_services = 0;
    for (name, service) in services {
        if let Some(depends) = service["depends_on"].as_object() {
            for dependency in depends.keys() {
                assert!(
                    services.contains_key(dependency),
                    "{name} depends on unknown {dependency}"
                );
            }
        }
        if service["image"] != "pricecast:latest" {
            continue;
        }
        pricecast_services += 1;
        // Locked down like the Kubernetes pods: not root, read-only root filesystem, writable
        // scratch only on a tmpfs, no capabilities, no privilege gain.
        let user = service["user"].as_str().unwrap_or_default();
        assert!(
            !user.is_empty() && !user.starts_with("0:") && user != "0" && user != "root",
            "{name} runs as {user:?}, not an unprivileged user"
        );
        assert_eq!(
            service["read_only"], true,
            "{name}: root filesystem not read-only"
        );
        let tmpfs: Vec<&str> = service["tmpfs"]
            .as_array()
            .map(|paths| paths.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        assert!(
            tmpfs
                .iter()
                .any(|path| path.split(':').next() == Some("/tmp")),
            "{name} has no tmpfs on /tmp: {tmpfs:?}"
        );
        assert_eq!(service["cap_drop"][0], "ALL", "{name}");
        assert!(
            service["security_opt"]
                .as_array()
                .is_some_and(|options| options.iter().any(|o| o == "no-new-privileges:true")),
            "{name} may gain privileges"
        );
        let program = service["command"][0].as_str().expect("command");
        assert!(
            shipped.contains(program),
            "{name} runs {program}, which the image does not ship"
        );
        for variable in service["environment"]
            .as_object()
            .expect("environment")
            .keys()
        {
            assert!(
                reference.contains(&format!("`{variable}`")),
                "{name} sets {variable}, which docs/CONFIGURATION.md does not document"
            );
        }
    }
    assert!(
        pricecast_services >= 3,
        "{pricecast_services} Pricecast services"
    );
    // Every ${VAR} compose reads is in .env.example.
    let text = std::fs::read_to_string(repo_root().join("docker/compose.yaml")).expect("compose");
    for reference in text.split("${").skip(1) {
        let variable: String = reference
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        assert!(
            example.contains(&format!("{variable}=")),
            "compose reads {variable}, which .env.example does not list"
        );
    }
}

/// The ConfigMap's data, as the environment a pod gets.
fn configmap_environment() -> Vec<(String, String)> {
    let documents = yaml_documents(
        &repo_root()
            .join("k8s/base/configmap.yaml")
            .display()
            .to_string(),
        None,
    );
    documents[0]["data"]
        .as_object()
        .expect("data")
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binaries_start_with_the_manifests_environment() {
    for program in image_binaries() {
        let output = Command::new(binary(&program))
            .arg("--help")
            .output()
            .expect("--help");
        assert!(output.status.success(), "{program} --help failed");
    }
    let fake = FakeBinance::start().await;
    let db = TestDb::postgres().await;
    let environment = configmap_environment();
    let with_environment = |program: &str| {
        let mut command = Command::new(binary(program));
        command
            .env_clear()
            .envs(environment.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .env("DATABASE_URL", &db.url)
            .env("BINANCE_BASE_URL", fake.base_url())
            .env("BINANCE_ARCHIVE_URL", fake.archive_url())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        command
    };
    let migrate = with_environment("pricecast")
        .arg("migrate")
        .output()
        .expect("migrate");
    assert!(
        migrate.status.success(),
        "{}",
        String::from_utf8_lossy(&migrate.stderr)
    );
    // The ConfigMap's 1m BTCUSDT from a fake that has only hourly history: a clean, empty run.
    let collect = with_environment("pricecast-collect")
        .args(["--intervals", "1h"])
        .output()
        .expect("collect");
    assert!(
        collect.status.success(),
        "{}",
        String::from_utf8_lossy(&collect.stderr)
    );

    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let mut api = with_environment("pricecast-api")
        .env("PRICECAST_API_ADDR", format!("127.0.0.1:{port}"))
        .spawn()
        .expect("start the API");
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let health = client
            .get(format!("http://127.0.0.1:{port}/health"))
            .send()
            .await;
        if health.is_ok_and(|r| r.status().is_success()) {
            break;
        }
        assert!(Instant::now() < deadline, "the API never became healthy");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let killed = Command::new("kill")
        .args(["-TERM", &api.id().to_string()])
        .status()
        .expect("SIGTERM");
    assert!(killed.success());
    let stopped_at = Instant::now();
    let status = api.wait().expect("API exits");
    assert!(
        stopped_at.elapsed() < Duration::from_secs(15),
        "no clean stop on SIGTERM"
    );
    assert_eq!(status.code(), Some(0), "the API exits 0 on SIGTERM");
}
