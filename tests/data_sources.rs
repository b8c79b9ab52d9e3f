//! Data sources on small files written in the official formats.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use ndarray::{Array, ArrayD, IxDyn};
use ndarray_npy::{write_npy, NpzWriter};
use serde_pickle::{HashableValue, SerOptions, Value};
use zerocost::data::{load_batch, BatchRequest, DataSource, Dataload, Normalization};

/// A fresh folder under the system temp dir, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> Self {
        static N: AtomicUsize = AtomicUsize::new(0);
        let p = std::env::temp_dir().join(format!(
            "zerocost-data-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = fs::remove_dir_all(&p);
        fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn req(batch_size: usize, num_classes: usize, input_shape: &[usize]) -> BatchRequest {
    BatchRequest { batch_size, num_classes, input_shape: input_shape.to_vec(), ..Default::default() }
}

fn grasp(mut r: BatchRequest, k: usize) -> BatchRequest {
    r.dataload = Dataload::Grasp;
    r.dataload_info = k;
    r
}

fn err_text(r: anyhow::Result<zerocost::data::Batch>) -> String {
    format!("{:#}", r.expect_err("expected an error"))
}

fn close(a: f32, b: f32) -> bool {
    (a - b).abs() <= 1e-5 * (1.0 + b.abs())
}

// ---------------------------------------------------------------- parsing

#[test]
fn parses_data_specs() {
    assert_eq!("synthetic".parse::<DataSource>().unwrap(), DataSource::Synthetic);
    assert_eq!("npy:some/dir".parse::<DataSource>().unwrap(), DataSource::NpyDir("some/dir".into()));
    assert_eq!("npz:a.npz".parse::<DataSource>().unwrap(), DataSource::Npz("a.npz".into()));
    assert_eq!("data/b.NPZ".parse::<DataSource>().unwrap(), DataSource::Npz("data/b.NPZ".into()));
    assert_eq!("cifar10:/d".parse::<DataSource>().unwrap(), DataSource::Cifar10("/d".into()));
    assert_eq!("cifar100:/d".parse::<DataSource>().unwrap(), DataSource::Cifar100("/d".into()));
    assert_eq!("imagenet16:/d".parse::<DataSource>().unwrap(), DataSource::ImageNet16("/d".into()));
    assert_eq!("images:/d".parse::<DataSource>().unwrap(), DataSource::Images("/d".into()));
    assert!("cifar10:".parse::<DataSource>().is_err());
    assert!("mnist:/d".parse::<DataSource>().is_err());
    assert_eq!("grasp".parse::<Dataload>().unwrap(), Dataload::Grasp);
    assert_eq!("Random".parse::<Dataload>().unwrap(), Dataload::Random);
    assert!("other".parse::<Dataload>().is_err());
    assert_eq!("cifar100".parse::<Normalization>().unwrap(), Normalization::cifar100());
    let d = BatchRequest::default();
    assert_eq!((d.batch_size, d.dataload, d.dataload_info, d.seed, d.shuffle), (64, Dataload::Random, 1, 0, false));
}

// ---------------------------------------------------------------- synthetic

#[test]
fn synthetic_is_seeded_and_shaped() {
    let mut r = req(8, 10, &[3, 4, 4]);
    r.dataload_info = 2;
    let a = load_batch(&DataSource::Synthetic, &r).unwrap();
    assert_eq!(a.inputs.shape(), &[16, 3, 4, 4]);
    assert_eq!(a.targets.len(), 16);
    assert!(a.targets.iter().all(|&t| (0..10).contains(&t)));
    assert_eq!(a, load_batch(&DataSource::Synthetic, &r).unwrap());
    r.seed = 1;
    let b = load_batch(&DataSource::Synthetic, &r).unwrap();
    assert_ne!(a.inputs, b.inputs);
    // roughly N(0, 1)
    let n = a.inputs.len() as f32;
    let mean = a.inputs.sum() / n;
    assert!(mean.abs() < 0.3, "mean {mean}");

    let g = load_batch(&DataSource::Synthetic, &grasp(req(64, 3, &[5]), 2)).unwrap();
    assert_eq!(g.inputs.shape(), &[6, 5]);
    assert_eq!(g.targets, vec![0, 0, 1, 1, 2, 2]);
}

// ---------------------------------------------------------------- CIFAR

/// One CIFAR record: label byte(s), then CHW pixels; pixel 0 of each channel marks the sample.
fn cifar_record(labels: &[u8], marker: u8) -> Vec<u8> {
    let mut r = labels.to_vec();
    for c in 0..3u8 {
        let mut plane = vec![c * 10; 1024];
        plane[0] = marker;
        r.extend(plane);
    }
    r
}

/// Five CIFAR-10 batches of 6 records each; sample `i` (over all files) has label `i % 10`
/// and marker `i`.
fn write_cifar10(dir: &Path) {
    fs::create_dir_all(dir).unwrap();
    for f in 0..5 {
        let mut bytes = Vec::new();
        for j in 0..6 {
            let i = (f * 6 + j) as u8;
            bytes.extend(cifar_record(&[i % 10], i));
        }
        fs::write(dir.join(format!("data_batch_{}.bin", f + 1)), bytes).unwrap();
    }
    fs::write(dir.join("test_batch.bin"), cifar_record(&[0], 0)).unwrap();
}

#[test]
fn cifar10_random_grasp_and_normalization() {
    let tmp = TempDir::new("c10");
    write_cifar10(&tmp.path().join("cifar-10-batches-bin"));
    // the parent folder and the extracted folder both work
    for dir in [tmp.path().to_path_buf(), tmp.path().join("cifar-10-batches-bin")] {
        let src = DataSource::Cifar10(dir);
        let mut r = req(4, 10, &[3, 32, 32]);
        r.dataload_info = 2; // 8 samples: crosses from data_batch_1 into data_batch_2
        let b = load_batch(&src, &r).unwrap();
        assert_eq!(b.inputs.shape(), &[8, 3, 32, 32]);
        assert_eq!(b.targets, vec![0, 1, 2, 3, 4, 5, 6, 7]);
        let n = Normalization::cifar10();
        for s in 0..8 {
            assert!(close(b.inputs[[s, 0, 0, 0]], (s as f32 / 255.0 - n.mean[0]) / n.std[0]));
            for c in 0..3 {
                let want = ((c * 10) as f32 / 255.0 - n.mean[c]) / n.std[c];
                assert!(close(b.inputs[[s, c, 5, 7]], want), "{} vs {want}", b.inputs[[s, c, 5, 7]]);
            }
        }

        // grasp: the first 2 samples of each class, class by class
        let g = load_batch(&src, &grasp(req(64, 10, &[3, 32, 32]), 2)).unwrap();
        assert_eq!(g.inputs.shape(), &[20, 3, 32, 32]);
        let want: Vec<i64> = (0..10).flat_map(|c| [c, c]).collect();
        assert_eq!(g.targets, want);
        let markers: Vec<f32> = (0..20).map(|s| g.inputs[[s, 0, 0, 0]] * n.std[0] + n.mean[0]).collect();
        for (s, m) in markers.iter().enumerate() {
            let class = s / 2;
            let idx = class + 10 * (s % 2); // first and second sample of the class
            assert!(close(*m, idx as f32 / 255.0), "sample {s}: {m}");
        }
    }
}

#[test]
fn cifar10_options_flatten_identity_shuffle() {
    let tmp = TempDir::new("c10opt");
    write_cifar10(tmp.path());
    let src = DataSource::Cifar10(tmp.path().into());
    let mut r = req(3, 10, &[3072]);
    r.normalization = Some(Normalization::none());
    let b = load_batch(&src, &r).unwrap();
    assert_eq!(b.inputs.shape(), &[3, 3072]);
    assert!(close(b.inputs[[2, 0]], 2.0 / 255.0));
    assert!(close(b.inputs[[2, 1024 + 1]], 10.0 / 255.0));

    // more than the source holds: all 30 samples
    let all = load_batch(&src, &req(100, 10, &[3, 32, 32])).unwrap();
    assert_eq!(all.len(), 30);

    let mut s = req(5, 10, &[3, 32, 32]);
    s.shuffle = true;
    s.seed = 7;
    let a = load_batch(&src, &s).unwrap();
    assert_eq!(a, load_batch(&src, &s).unwrap());
    assert_ne!(a.targets, vec![0, 1, 2, 3, 4]);

    // not resizable
    let e = err_text(load_batch(&src, &req(4, 10, &[3, 64, 64])));
    assert!(e.contains("data_batch_1.bin"), "{e}");
}

#[test]
fn cifar10_errors_name_the_file() {
    let tmp = TempDir::new("c10err");
    write_cifar10(tmp.path());
    let src = DataSource::Cifar10(tmp.path().into());

    // truncated: not a whole number of 3073-byte records
    let f1 = tmp.path().join("data_batch_1.bin");
    let mut bytes = fs::read(&f1).unwrap();
    bytes.truncate(bytes.len() - 100);
    fs::write(&f1, &bytes).unwrap();
    let e = err_text(load_batch(&src, &req(4, 10, &[3, 32, 32])));
    assert!(e.contains("data_batch_1.bin") && e.contains("3073"), "{e}");

    // mislabelled: label 10 for a 10-class model
    let mut bytes = cifar_record(&[3], 0);
    bytes.extend(cifar_record(&[10], 1));
    fs::write(&f1, &bytes).unwrap();
    let e = err_text(load_batch(&src, &req(4, 10, &[3, 32, 32])));
    assert!(e.contains("data_batch_1.bin") && e.contains("label 10"), "{e}");

    // a missing batch file
    fs::remove_file(tmp.path().join("data_batch_4.bin")).unwrap();
    let e = err_text(load_batch(&src, &req(1, 10, &[3, 32, 32])));
    assert!(e.contains("data_batch_4.bin"), "{e}");

    // a missing folder
    let gone = tmp.path().join("nowhere");
    let e = err_text(load_batch(&DataSource::Cifar10(gone), &req(1, 10, &[3, 32, 32])));
    assert!(e.contains("nowhere"), "{e}");

    // grasp needs k of every class
    let tmp2 = TempDir::new("c10grasp");
    write_cifar10(tmp2.path());
    let e = err_text(load_batch(&DataSource::Cifar10(tmp2.path().into()), &grasp(req(1, 10, &[3, 32, 32]), 4)));
    assert!(e.contains("class 0 has 3"), "{e}");
}

#[test]
fn cifar100_uses_fine_labels() {
    let tmp = TempDir::new("c100");
    let dir = tmp.path().join("cifar-100-binary");
    fs::create_dir_all(&dir).unwrap();
    let mut bytes = Vec::new();
    for i in 0..8u8 {
        // coarse label 99 - i (ignored), fine label i % 4
        bytes.extend(cifar_record(&[19 - i, i % 4], i));
    }
    fs::write(dir.join("train.bin"), &bytes).unwrap();
    fs::write(dir.join("test.bin"), cifar_record(&[0, 0], 0)).unwrap();
    let src = DataSource::Cifar100(tmp.path().into());
    let b = load_batch(&src, &req(5, 100, &[3, 32, 32])).unwrap();
    assert_eq!(b.targets, vec![0, 1, 2, 3, 0]);
    let n = Normalization::cifar100();
    assert!(close(b.inputs[[4, 0, 0, 0]], (4.0 / 255.0 - n.mean[0]) / n.std[0]));
    assert!(close(b.inputs[[4, 2, 1, 1]], (20.0 / 255.0 - n.mean[2]) / n.std[2]));

    // with 4 classes, grasp k=2: samples 0,4 | 1,5 | 2,6 | 3,7
    let g = load_batch(&src, &grasp(req(1, 4, &[3, 32, 32]), 2)).unwrap();
    assert_eq!(g.targets, vec![0, 0, 1, 1, 2, 2, 3, 3]);
    let m: Vec<u32> = (0..8)
        .map(|s| ((g.inputs[[s, 0, 0, 0]] * n.std[0] + n.mean[0]) * 255.0).round() as u32)
        .collect();
    assert_eq!(m, vec![0, 4, 1, 5, 2, 6, 3, 7]);

    // truncated
    fs::write(dir.join("train.bin"), &bytes[..bytes.len() - 1]).unwrap();
    let e = err_text(load_batch(&src, &req(1, 100, &[3, 32, 32])));
    assert!(e.contains("train.bin") && e.contains("3074"), "{e}");
}

// ---------------------------------------------------------------- ImageNet16

/// A pickle as Python 2 + NumPy write the official files (protocol 2): `data` is a NumPy
/// uint8 array through `_reconstruct`, strings are byte strings, `labels` a list of ints.
fn py2_numpy_pickle(data: &[u8], n: usize, row: usize, labels: &[i64]) -> Vec<u8> {
    fn short_str(p: &mut Vec<u8>, s: &[u8]) {
        p.push(b'U');
        p.push(s.len() as u8);
        p.extend_from_slice(s);
    }
    fn binint(p: &mut Vec<u8>, v: i32) {
        p.push(b'J');
        p.extend_from_slice(&v.to_le_bytes());
    }
    let mut p = vec![0x80, 2, b'}', b'('];
    short_str(&mut p, b"data");
    p.extend_from_slice(b"cnumpy.core.multiarray\n_reconstruct\n");
    p.extend_from_slice(b"cnumpy\nndarray\n");
    p.extend_from_slice(&[b'K', 0, 0x85]);
    short_str(&mut p, b"b");
    p.extend_from_slice(&[0x87, b'R', b'(']);
    binint(&mut p, 1);
    binint(&mut p, n as i32);
    binint(&mut p, row as i32);
    p.push(0x86);
    p.extend_from_slice(b"cnumpy\ndtype\n");
    short_str(&mut p, b"u1");
    p.extend_from_slice(&[b'K', 0, b'K', 1, 0x87, b'R', b'(']);
    binint(&mut p, 3);
    short_str(&mut p, b"|");
    p.extend_from_slice(b"NNN");
    binint(&mut p, -1);
    binint(&mut p, -1);
    binint(&mut p, 0);
    p.extend_from_slice(&[b't', b'b', 0x89, b'T']);
    p.extend_from_slice(&(data.len() as u32).to_le_bytes());
    p.extend_from_slice(data);
    p.extend_from_slice(b"tb");
    short_str(&mut p, b"labels");
    p.extend_from_slice(b"](");
    for &l in labels {
        binint(&mut p, l as i32);
    }
    p.extend_from_slice(b"eu.");
    p
}

/// The simpler layout serde-pickle writes itself: `data` a list of `bytes` rows.
fn rows_pickle(rows: &[Vec<u8>], labels: &[i64]) -> Vec<u8> {
    let mut d = BTreeMap::new();
    d.insert(HashableValue::String("data".into()), Value::List(rows.iter().cloned().map(Value::Bytes).collect()));
    d.insert(HashableValue::String("labels".into()), Value::List(labels.iter().map(|&l| Value::I64(l)).collect()));
    serde_pickle::value_to_vec(&Value::Dict(d), SerOptions::new()).unwrap()
}

/// A 3×16×16 image whose R plane starts with `marker`, planes otherwise 10, 20, 30.
fn in16_row(marker: u8) -> Vec<u8> {
    let mut r: Vec<u8> = (0..3).flat_map(|c| vec![10 * (c + 1) as u8; 256]).collect();
    r[0] = marker;
    r
}

/// Ten batches of 4 samples; sample `i` has (1-based) label `i % 6 + 1` and marker `i`.
/// The first file is in the official NumPy layout, the rest in the list-of-bytes layout.
fn write_imagenet16(dir: &Path) {
    fs::create_dir_all(dir).unwrap();
    for f in 0..10 {
        let idx: Vec<usize> = (f * 4..f * 4 + 4).collect();
        let rows: Vec<Vec<u8>> = idx.iter().map(|&i| in16_row(i as u8)).collect();
        let labels: Vec<i64> = idx.iter().map(|&i| (i % 6 + 1) as i64).collect();
        let bytes = if f == 0 { py2_numpy_pickle(&rows.concat(), 4, 768, &labels) } else { rows_pickle(&rows, &labels) };
        fs::write(dir.join(format!("train_data_batch_{}", f + 1)), bytes).unwrap();
    }
}

#[test]
fn imagenet16_reads_numpy_and_plain_pickles() {
    let tmp = TempDir::new("in16");
    write_imagenet16(tmp.path());
    let src = DataSource::ImageNet16(tmp.path().into());
    // 6 classes: nothing filtered; 6 samples span the NumPy file and the next one
    let b = load_batch(&src, &req(6, 6, &[3, 16, 16])).unwrap();
    assert_eq!(b.inputs.shape(), &[6, 3, 16, 16]);
    assert_eq!(b.targets, vec![0, 1, 2, 3, 4, 5]);
    let n = Normalization::imagenet16();
    assert!(close(n.mean[0], 122.68 / 255.0) && close(n.std[2], 65.09 / 255.0));
    for s in 0..6 {
        assert!(close(b.inputs[[s, 0, 0, 0]], (s as f32 / 255.0 - n.mean[0]) / n.std[0]));
        assert!(close(b.inputs[[s, 1, 3, 3]], (20.0 / 255.0 - n.mean[1]) / n.std[1]));
        assert!(close(b.inputs[[s, 2, 15, 15]], (30.0 / 255.0 - n.mean[2]) / n.std[2]));
    }

    // 3 classes: labels 4..6 are outside the subset and skipped (as ImageNet16-120 does)
    let b = load_batch(&src, &req(4, 3, &[3, 16, 16])).unwrap();
    assert_eq!(b.targets, vec![0, 1, 2, 0]);
    let m: Vec<u32> =
        (0..4).map(|s| ((b.inputs[[s, 0, 0, 0]] * n.std[0] + n.mean[0]) * 255.0).round() as u32).collect();
    assert_eq!(m, vec![0, 1, 2, 6]);

    let g = load_batch(&src, &grasp(req(1, 6, &[3, 16, 16]), 2)).unwrap();
    assert_eq!(g.targets, vec![0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5]);

    // errors: wrong size for the model, a missing file, a corrupt file, label 0
    let e = err_text(load_batch(&src, &req(4, 6, &[3, 32, 32])));
    assert!(e.contains("train_data_batch_1"), "{e}");
    fs::write(tmp.path().join("train_data_batch_2"), b"\x80\x02}(U\x04data").unwrap();
    let e = err_text(load_batch(&src, &req(6, 6, &[3, 16, 16])));
    assert!(e.contains("train_data_batch_2"), "{e}");
    fs::write(tmp.path().join("train_data_batch_2"), rows_pickle(&[in16_row(0)], &[0])).unwrap();
    let e = err_text(load_batch(&src, &req(6, 6, &[3, 16, 16])));
    assert!(e.contains("train_data_batch_2") && e.contains("label 0"), "{e}");
    fs::remove_file(tmp.path().join("train_data_batch_10")).unwrap();
    let e = err_text(load_batch(&src, &req(1, 6, &[3, 16, 16])));
    assert!(e.contains("train_data_batch_10"), "{e}");
}

/// Real NumPy pickles (protocols 2 and 5), only where python3 with numpy is installed.
#[test]
fn imagenet16_real_numpy_pickles_if_python_is_available() {
    let tmp = TempDir::new("in16py");
    let script = r#"
import sys, pickle, numpy as np
d = sys.argv[1]
for f in range(10):
    idx = np.arange(f * 4, f * 4 + 4)
    data = np.tile(np.repeat(np.array([10, 20, 30], np.uint8), 256), (4, 1))
    data[:, 0] = idx
    labels = [int(i % 6 + 1) for i in idx]
    if f % 2:
        labels = np.array(labels, dtype=np.int64)
        data = np.asfortranarray(data)
    with open(f"{d}/train_data_batch_{f + 1}", "wb") as fh:
        pickle.dump({"data": data, "labels": labels, "mean": np.zeros(768)}, fh, protocol=2 if f < 5 else 5)
"#;
    let ok = std::process::Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(tmp.path())
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !ok {
        eprintln!("python3 with numpy not available; skipping");
        return;
    }
    let src = DataSource::ImageNet16(tmp.path().into());
    let mut r = req(40, 6, &[3, 16, 16]);
    r.normalization = Some(Normalization::none());
    let b = load_batch(&src, &r).unwrap();
    assert_eq!(b.len(), 40);
    let want: Vec<i64> = (0..40).map(|i| i % 6).collect();
    assert_eq!(b.targets, want);
    for s in 0..40 {
        assert!(close(b.inputs[[s, 0, 0, 0]], s as f32 / 255.0), "sample {s}");
        assert!(close(b.inputs[[s, 0, 0, 1]], 10.0 / 255.0));
        assert!(close(b.inputs[[s, 2, 7, 7]], 30.0 / 255.0));
    }
}

// ---------------------------------------------------------------- image folders

#[test]
fn image_folder_classes_resize_and_errors() {
    let tmp = TempDir::new("img");
    let root = tmp.path();
    for class in ["cat", "dog"] {
        fs::create_dir_all(root.join(class)).unwrap();
    }
    fs::write(root.join("notes.txt"), "not a class").unwrap();
    // cat: two 4×4 images of a flat colour; dog: a 8×6 image and a 4×4 one
    image::RgbImage::from_pixel(4, 4, image::Rgb([255, 0, 51])).save(root.join("cat/a.png")).unwrap();
    image::RgbImage::from_pixel(4, 4, image::Rgb([0, 255, 0])).save(root.join("cat/b.png")).unwrap();
    image::RgbImage::from_pixel(8, 6, image::Rgb([0, 0, 255])).save(root.join("dog/x.png")).unwrap();
    image::RgbImage::from_pixel(4, 4, image::Rgb([10, 20, 30])).save(root.join("dog/y.png")).unwrap();
    fs::write(root.join("dog/readme.md"), "ignored").unwrap();

    let src = DataSource::Images(root.into());
    let b = load_batch(&src, &req(64, 2, &[3, 4, 4])).unwrap();
    assert_eq!(b.inputs.shape(), &[4, 3, 4, 4]);
    assert_eq!(b.targets, vec![0, 0, 1, 1]);
    let n = Normalization::imagenet();
    assert!(close(b.inputs[[0, 0, 1, 2]], (1.0 - n.mean[0]) / n.std[0]));
    assert!(close(b.inputs[[0, 2, 3, 3]], (0.2 - n.mean[2]) / n.std[2]));
    // the 8×6 image, scaled to cover 4×4 and centre-cropped: still flat blue
    assert!(close(b.inputs[[2, 2, 0, 0]], (1.0 - n.mean[2]) / n.std[2]));
    assert!(close(b.inputs[[2, 0, 3, 3]], (0.0 - n.mean[0]) / n.std[0]));

    let g = load_batch(&src, &grasp(req(1, 2, &[3, 4, 4]), 1)).unwrap();
    assert_eq!(g.targets, vec![0, 1]);
    assert!(close(g.inputs[[1, 2, 0, 0]], (1.0 - n.mean[2]) / n.std[2]));

    // grayscale model, no normalization
    let mut r = req(1, 2, &[1, 4, 4]);
    r.normalization = Some(Normalization::none());
    let l = load_batch(&src, &r).unwrap();
    assert_eq!(l.inputs.shape(), &[1, 1, 4, 4]);

    // errors
    let e = err_text(load_batch(&src, &req(4, 1, &[3, 4, 4])));
    assert!(e.contains("2 class folders"), "{e}");
    let e = err_text(load_batch(&src, &grasp(req(1, 2, &[3, 4, 4]), 3)));
    assert!(e.contains("class 0 has 2"), "{e}");
    let e = err_text(load_batch(&DataSource::Images(root.join("missing")), &req(4, 2, &[3, 4, 4])));
    assert!(e.contains("missing"), "{e}");
    fs::write(root.join("cat/a.png"), b"not a png").unwrap();
    let e = err_text(load_batch(&src, &req(4, 2, &[3, 4, 4])));
    assert!(e.contains("a.png"), "{e}");
}

// ---------------------------------------------------------------- npy / npz

fn inputs_f32(n: usize) -> ArrayD<f32> {
    Array::from_shape_fn(IxDyn(&[n, 2, 3]), |ix| (ix[0] * 100 + ix[1] * 10 + ix[2]) as f32)
}

#[test]
fn npy_pairs_and_dirs() {
    let tmp = TempDir::new("npy");
    let dir = tmp.path();
    write_npy(dir.join("inputs.npy"), &inputs_f32(10)).unwrap();
    let y: Vec<i64> = (0..10).map(|i| i % 3).collect();
    write_npy(dir.join("targets.npy"), &ndarray::Array1::from(y.clone())).unwrap();

    let b = load_batch(&DataSource::NpyDir(dir.into()), &req(4, 3, &[2, 3])).unwrap();
    assert_eq!(b.inputs.shape(), &[4, 2, 3]);
    assert_eq!(b.targets, vec![0, 1, 2, 0]);
    assert_eq!(b.inputs[[3, 1, 2]], 312.0); // used as stored, no normalization

    let g = load_batch(&DataSource::NpyDir(dir.into()), &grasp(req(1, 3, &[6]), 2)).unwrap();
    assert_eq!(g.inputs.shape(), &[6, 6]);
    assert_eq!(g.targets, vec![0, 0, 1, 1, 2, 2]);
    let first: Vec<f32> = (0..6).map(|s| g.inputs[[s, 0]]).collect();
    assert_eq!(first, vec![0.0, 300.0, 100.0, 400.0, 200.0, 500.0]);

    // float64 inputs, int32 targets, explicit pair
    let x64 = inputs_f32(5).mapv(|v| v as f64);
    write_npy(dir.join("x64.npy"), &x64).unwrap();
    write_npy(dir.join("y32.npy"), &ndarray::Array1::from(vec![1i32, 0, 1, 0, 1])).unwrap();
    let pair = DataSource::Npy { inputs: dir.join("x64.npy"), targets: dir.join("y32.npy") };
    let b = load_batch(&pair, &req(64, 2, &[2, 3])).unwrap();
    assert_eq!(b.len(), 5); // fewer than asked: all of them
    assert_eq!(b.targets, vec![1, 0, 1, 0, 1]);
    assert_eq!(b.inputs[[4, 0, 1]], 401.0);

    // errors: mislabelled, count mismatch, shape, dtype, missing files
    let e = err_text(load_batch(&DataSource::NpyDir(dir.into()), &req(4, 2, &[2, 3])));
    assert!(e.contains("targets.npy") && e.contains("label 2"), "{e}");
    let bad = DataSource::Npy { inputs: dir.join("inputs.npy"), targets: dir.join("y32.npy") };
    let e = err_text(load_batch(&bad, &req(4, 3, &[2, 3])));
    assert!(e.contains("inputs.npy") && e.contains("y32.npy"), "{e}");
    let e = err_text(load_batch(&DataSource::NpyDir(dir.into()), &req(4, 3, &[3, 2])));
    assert!(e.contains("inputs.npy"), "{e}");
    write_npy(dir.join("yf.npy"), &ndarray::Array1::from(vec![0.5f32; 10])).unwrap();
    let badt = DataSource::Npy { inputs: dir.join("inputs.npy"), targets: dir.join("yf.npy") };
    let e = err_text(load_batch(&badt, &req(4, 3, &[2, 3])));
    assert!(e.contains("yf.npy"), "{e}");
    let e = err_text(load_batch(&DataSource::NpyDir(dir.join("none")), &req(4, 3, &[2, 3])));
    assert!(e.contains("none"), "{e}");
    let gone = DataSource::Npy { inputs: dir.join("gone.npy"), targets: dir.join("y32.npy") };
    let e = err_text(load_batch(&gone, &req(4, 3, &[2, 3])));
    assert!(e.contains("gone.npy"), "{e}");
}

#[test]
fn npz_archives() {
    let tmp = TempDir::new("npz");
    let f1 = tmp.path().join("data.npz");
    let mut w = NpzWriter::new_compressed(fs::File::create(&f1).unwrap());
    w.add_array("inputs", &inputs_f32(6)).unwrap();
    w.add_array("targets", &ndarray::Array1::from(vec![1i64, 0, 1, 0, 1, 0])).unwrap();
    w.finish().unwrap();
    let src: DataSource = f1.to_str().unwrap().parse().unwrap();
    let b = load_batch(&src, &grasp(req(1, 2, &[2, 3]), 3)).unwrap();
    assert_eq!(b.targets, vec![0, 0, 0, 1, 1, 1]);
    assert_eq!(b.inputs[[0, 0, 0]], 100.0);

    let f2 = tmp.path().join("xy.npz");
    let mut w = NpzWriter::new(fs::File::create(&f2).unwrap());
    w.add_array("x", &inputs_f32(3)).unwrap();
    w.add_array("y", &ndarray::Array2::from_shape_vec((3, 1), vec![2i32, 1, 0]).unwrap()).unwrap();
    w.finish().unwrap();
    let b = load_batch(&DataSource::Npz(f2.clone()), &req(2, 3, &[])).unwrap();
    assert_eq!(b.inputs.shape(), &[2, 2, 3]);
    assert_eq!(b.targets, vec![2, 1]);

    let f3 = tmp.path().join("other.npz");
    let mut w = NpzWriter::new(fs::File::create(&f3).unwrap());
    w.add_array("a", &inputs_f32(3)).unwrap();
    w.finish().unwrap();
    let e = err_text(load_batch(&DataSource::Npz(f3), &req(2, 3, &[2, 3])));
    assert!(e.contains("other.npz") && e.contains("inputs"), "{e}");
    let e = err_text(load_batch(&DataSource::Npz(tmp.path().join("absent.npz")), &req(2, 3, &[2, 3])));
    assert!(e.contains("absent.npz"), "{e}");
}
