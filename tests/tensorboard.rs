//! TensorBoard reads what gan-run logs: a run's scalars (per epoch and per step) and grids,
//! across a resumed start, and a sweep's HParams experiment and each point's values. Read back
//! with TensorBoard's own Python reader (PyPI `tensorboard`; CI installs it).

use crate::util::*;

/// Reads every run under a log directory with TensorBoard's EventAccumulator, as JSON: per
/// run, its scalars `[step, value]`, images `[step, width, height]` and HParams plugin data.
const READER: &str = r#"
import json, sys
from tensorboard.backend.event_processing import event_accumulator as ea
from tensorboard.backend.event_processing import event_multiplexer as em
from tensorboard.plugins.hparams import plugin_data_pb2
from google.protobuf.json_format import MessageToDict
mux = em.EventMultiplexer(size_guidance={ea.IMAGES: 0, ea.SCALARS: 0, ea.TENSORS: 0})
mux.AddRunsFromDirectory(sys.argv[1])
mux.Reload()
out = {}
for run in mux.Runs():
    acc = mux.GetAccumulator(run)
    tags = acc.Tags()
    hp = {}
    try:
        for tag, content in acc.PluginTagToContent("hparams").items():
            hp[tag] = MessageToDict(plugin_data_pb2.HParamsPluginData.FromString(content))
    except KeyError:
        pass
    out[run] = {
        "scalars": {t: [[e.step, e.value] for e in acc.Scalars(t)] for t in tags["scalars"]},
        "images": {t: [[e.step, e.width, e.height] for e in acc.Images(t)] for t in tags["images"]},
        "hparams": hp,
    }
print(json.dumps(out))
"#;

fn tensorboard_ready() -> bool {
    let ok = std::process::Command::new("python3")
        .args([
            "-c",
            "import tensorboard.backend.event_processing.event_multiplexer",
        ])
        .output()
        .is_ok_and(|o| o.status.success());
    tool_available(
        ok,
        "python3 with tensorboard",
        "reading the event files back",
    )
}

fn read_back(dir: &std::path::Path) -> serde_json::Value {
    let out = run_tool(
        std::process::Command::new("python3")
            .args(["-c", READER])
            .arg(dir),
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn tensorboard_reads_a_resumed_runs_scalars_grids_and_steps() {
    let s = Scratch::new();
    let smoke = config("smoke.toml").display().to_string();
    let data = data_dir();
    let args = |extra: &[&'static str]| {
        let mut a = smoke_args(&[&smoke], &data);
        a.extend([
            "--set",
            "training.epochs=3",
            "--set",
            "output.tensorboard_every_steps=4",
        ]);
        a.extend(extra);
        a
    };
    s.ok(&args(&["--max-epochs", "2"]));
    s.ok(&args(&[]));
    let run = s.path().join("runs/smoke");
    let files = std::fs::read_dir(&run)
        .unwrap()
        .filter(|e| {
            let name = e.as_ref().unwrap().file_name();
            name.to_string_lossy().starts_with("events.out.tfevents.")
        })
        .count();
    assert_eq!(files, 2, "one event file per start");
    if !tensorboard_ready() {
        return;
    }
    let all = read_back(&s.path().join("runs"));
    let smoke_run = &all["smoke"];
    let steps_per_epoch = 2000 / 50; // the smoke config's data and batch size
    let losses: Vec<(i64, f64)> = smoke_run["scalars"]["loss/d"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p[0].as_i64().unwrap(), p[1].as_f64().unwrap()))
        .collect();
    let metrics = loss_columns(&run.join("metrics.csv"));
    assert_eq!(losses.len(), 3, "{losses:?}");
    for (i, (step, value)) in losses.iter().enumerate() {
        assert_eq!(*step, ((i + 1) * steps_per_epoch) as i64);
        let csv: f64 = metrics[i][1].parse().unwrap();
        assert!(
            (value - csv).abs() < 1e-6 * csv.abs().max(1.0),
            "{value} {csv}"
        );
    }
    let per_step = smoke_run["scalars"]["step/loss_d"].as_array().unwrap();
    assert_eq!(
        per_step.len(),
        3 * (steps_per_epoch / 4),
        "no step twice, none lost"
    );
    let rates = smoke_run["scalars"]["schedule/lr_discriminator"]
        .as_array()
        .unwrap();
    assert_eq!(rates.len(), 3, "the learning rate at each epoch");
    let grids = smoke_run["images"]["samples"].as_array().unwrap();
    let grid_epochs: Vec<i64> = grids
        .iter()
        .map(|g| g[0].as_i64().unwrap() / steps_per_epoch as i64)
        .collect();
    assert_eq!(
        grid_epochs,
        [1, 2, 3],
        "the grids written, each at its epoch"
    );
    assert!(grids
        .iter()
        .all(|g| g[1] == g[2] && g[1].as_i64() > Some(28)));
}

#[test]
fn tensorboard_hparams_show_a_sweeps_points_and_their_values() {
    let s = Scratch::new();
    let smoke = config("smoke.toml").display().to_string();
    let data = data_dir();
    let text = format!(
        "name = \"sw\"\nbase = \"{smoke}\"\n[set]\n\"training.epochs\" = 1\n\
         \"data.dir\" = \"{data}\"\n\
         [grid]\n\"optimizer.discriminator.beta1\" = [0.1, 0.5]\nloss = [\"bce_logits\"]\n"
    );
    let sweep = s.write("sweep.toml", &text).display().to_string();
    s.ok(&["sweep", &sweep, "--jobs", "2", "--runs-dir", "runs"]);
    if !tensorboard_ready() {
        return;
    }
    let all = read_back(&s.path().join("runs/sw"));
    let experiment = &all["."]["hparams"]["_hparams_/experiment"]["experiment"];
    let names: Vec<&str> = experiment["hparamInfos"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["loss", "optimizer.discriminator.beta1"]);
    let metric_tags: Vec<&str> = experiment["metricInfos"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["name"]["tag"].as_str().unwrap())
        .collect();
    assert!(metric_tags.contains(&"loss/d"), "{metric_tags:?}");
    for (point, beta1) in [
        ("loss=bce_logits,beta1=0.1", 0.1),
        ("loss=bce_logits,beta1=0.5", 0.5),
    ] {
        let run = &all[point];
        let start = &run["hparams"]["_hparams_/session_start_info"]["sessionStartInfo"];
        assert_eq!(
            start["hparams"]["optimizer.discriminator.beta1"].as_f64(),
            Some(beta1),
            "{point}: {start}"
        );
        assert_eq!(start["hparams"]["loss"], "bce_logits");
        assert_eq!(start["groupName"], point);
        assert_eq!(run["scalars"]["loss/d"].as_array().unwrap().len(), 1);
    }
}
