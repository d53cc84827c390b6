//! Images to tensors, the way the models' own code does it and PIL computes it: decoding,
//! calibration variants, gray conversion, the resize (torchvision's arithmetic, PIL's
//! antialiased bilinear), centre crop, letterbox and padding, colour order, scaling and
//! mean/std, NCHW or NHWC.

use std::path::Path;

use anyhow::{anyhow, Result};

use super::desc::{Color, Layout, Preprocess, ValueScale};

/// Calibration variants of an image (`DatasetDesc::augment`): 0 is the image itself.
pub const AUGMENT_VARIANTS: usize = 8;

/// Variant `k` of an image, before any resize: 1 mirrored, 2–5 the four corner crops of 80%
/// of each side, 6 the centre crop of 80%, 7 that crop mirrored.
pub(super) fn augmented(img: image::DynamicImage, variant: usize) -> image::DynamicImage {
    let (w, h) = (img.width(), img.height());
    let (cw, ch) = ((w * 4 / 5).max(1), (h * 4 / 5).max(1));
    let crop = |x: u32, y: u32| img.crop_imm(x, y, cw, ch);
    match variant {
        1 => img.fliph(),
        2 => crop(0, 0),
        3 => crop(w - cw, 0),
        4 => crop(0, h - ch),
        5 => crop(w - cw, h - ch),
        6 => crop((w - cw) / 2, (h - ch) / 2),
        7 => crop((w - cw) / 2, (h - ch) / 2).fliph(),
        _ => img,
    }
}

/// Decodes, resizes and crops an image (its calibration `variant`, 0 for itself); returns HWC
/// pixel values (0–255 as f32, padding at `pad_value`) and (h, w, c).
pub(super) fn decode_image(
    path: &Path,
    pre: &Preprocess,
    variant: usize,
) -> Result<(Vec<f32>, usize, usize, usize)> {
    let img =
        image::open(path).map_err(|e| anyhow!("{}: cannot decode image: {e}", path.display()))?;
    let img = augmented(img, variant);
    let mut img = match pre.color {
        Color::Grayscale => image::DynamicImage::ImageLuma8(pil_gray(&img.to_rgb8())),
        _ => image::DynamicImage::ImageRgb8(img.to_rgb8()),
    };
    let (iw, ih) = (img.width().max(1), img.height().max(1));
    let resize = |img: &image::DynamicImage, w: u32, h: u32| {
        img.resize_exact(w.max(1), h.max(1), image::imageops::FilterType::Triangle)
    };
    // The canvas the resized image is placed on: (height, width, top, left).
    let mut canvas = None;
    if let Some((h, w)) = pre.resize_to {
        img = resize(&img, w, h);
    } else if let Some(short) = pre.resize_shorter {
        let (nw, nh) = resized_size(iw, ih, short);
        img = resize(&img, nw, nh);
    } else if let Some((h, w)) = pre.letterbox {
        let r = (h as f64 / ih as f64).min(w as f64 / iw as f64);
        let (nw, nh) = (
            ((iw as f64 * r).round() as u32).clamp(1, w),
            ((ih as f64 * r).round() as u32).clamp(1, h),
        );
        img = resize(&img, nw, nh);
        // Ultralytics' split of the border: round(d/2 − 0.1) before, the rest after.
        let top = ((h - nh) as f64 / 2.0 - 0.1).round().max(0.0) as u32;
        let left = ((w - nw) as f64 / 2.0 - 0.1).round().max(0.0) as u32;
        canvas = Some((h, w, top, left));
    } else if let Some((h, w)) = pre.pad_to_width {
        let nw = ((h as f64 * iw as f64 / ih as f64).ceil() as u32).clamp(1, w);
        img = resize(&img, nw, h);
        canvas = Some((h, w, 0, 0));
    }
    if let Some((ch, cw)) = pre.center_crop {
        if ch > img.height() || cw > img.width() {
            // torchvision pads the short sides, then crops: the image centred on the crop.
            let top = ch.saturating_sub(img.height()) / 2;
            let left = cw.saturating_sub(img.width()) / 2;
            let (x, y) = (
                crop_offset(img.width(), cw.min(img.width())),
                crop_offset(img.height(), ch.min(img.height())),
            );
            img = img.crop_imm(x, y, cw.min(img.width()), ch.min(img.height()));
            canvas = Some((ch, cw, top, left));
        } else {
            let x = crop_offset(img.width(), cw);
            let y = crop_offset(img.height(), ch);
            img = img.crop_imm(x, y, cw, ch);
        }
    }
    let (w, h) = (img.width() as usize, img.height() as usize);
    let (pixels, c): (Vec<f32>, usize) = match pre.color {
        Color::Grayscale => (
            img.into_luma8()
                .into_raw()
                .into_iter()
                .map(f32::from)
                .collect(),
            1,
        ),
        Color::Rgb => (
            img.to_rgb8()
                .into_raw()
                .into_iter()
                .map(f32::from)
                .collect(),
            3,
        ),
        Color::Bgr => {
            let rgb = img.to_rgb8().into_raw();
            (
                rgb.chunks_exact(3)
                    .flat_map(|p| [p[2], p[1], p[0]])
                    .map(f32::from)
                    .collect(),
                3,
            )
        }
    };
    let Some((ch, cw, top, left)) = canvas else {
        return Ok((pixels, h, w, c));
    };
    let (ch, cw, top, left) = (ch as usize, cw as usize, top as usize, left as usize);
    let mut out = vec![pre.pad_value; ch * cw * c];
    for y in 0..h.min(ch.saturating_sub(top)) {
        let row = (w * c).min((cw.saturating_sub(left)) * c);
        let dst = ((top + y) * cw + left) * c;
        out[dst..dst + row].copy_from_slice(&pixels[y * w * c..y * w * c + row]);
    }
    Ok((out, ch, cw, c))
}

/// RGB to gray as PIL's `convert("L")` computes it (ITU-R 601-2 luma in 16-bit fixed point:
/// `L = (19595 R + 38470 G + 7471 B + 2^15) >> 16`); the image crate's `to_luma8` weighs by
/// Rec. 709 instead, which shifts a typical photo's gray levels by several units.
pub(super) fn pil_gray(rgb: &image::RgbImage) -> image::GrayImage {
    image::GrayImage::from_fn(rgb.width(), rgb.height(), |x, y| {
        let [r, g, b] = rgb.get_pixel(x, y).0.map(u32::from);
        image::Luma([((19595 * r + 38470 * g + 7471 * b + 0x8000) >> 16) as u8])
    })
}

/// (width, height) after resizing the shorter side to `short`: the longer side is
/// `int(short * long / short_side)`, truncated, as torchvision computes it.
pub(super) fn resized_size(w: u32, h: u32, short: u32) -> (u32, u32) {
    let scaled =
        |long: u32, side: u32| ((short as u64 * long as u64) / side.max(1) as u64).max(1) as u32;
    if w <= h {
        (short, scaled(h, w))
    } else {
        (scaled(w, h), short)
    }
}

/// torchvision's centre-crop offset: `int(round((size - crop) / 2))`, Python's round (half to
/// even).
pub(super) fn crop_offset(size: u32, crop: u32) -> u32 {
    let d = size - crop;
    let half = d / 2;
    if d % 2 == 1 && half % 2 == 1 {
        half + 1
    } else {
        half
    }
}

/// Scales, normalises and lays out HWC pixel values as a batch-of-one tensor.
pub(super) fn normalize_hwc(
    pixels: &[f32],
    h: usize,
    w: usize,
    c: usize,
    pre: &Preprocess,
) -> (Vec<f32>, Vec<usize>) {
    let divisor = match pre.value_scale {
        ValueScale::Byte => 1.0,
        ValueScale::Unit => 255.0,
    };
    let mean = |ch: usize| {
        pre.mean
            .get(ch)
            .or(pre.mean.first())
            .copied()
            .unwrap_or(0.0)
    };
    let std = |ch: usize| pre.std.get(ch).or(pre.std.first()).copied().unwrap_or(1.0);
    let value = |y: usize, x: usize, ch: usize| {
        (pixels[(y * w + x) * c + ch] / divisor - mean(ch)) / std(ch)
    };
    let mut out = Vec::with_capacity(h * w * c);
    match pre.layout {
        Layout::Nchw => {
            for ch in 0..c {
                for y in 0..h {
                    for x in 0..w {
                        out.push(value(y, x, ch));
                    }
                }
            }
            (out, vec![1, c, h, w])
        }
        Layout::Nhwc => {
            for y in 0..h {
                for x in 0..w {
                    for ch in 0..c {
                        out.push(value(y, x, ch));
                    }
                }
            }
            (out, vec![1, h, w, c])
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::{npy, Dataset, DatasetDesc, Labels, Purpose, Source, Split};
    use crate::tensor::TensorData;
    use std::path::PathBuf;

    /// PIL resamples in fixed point, the image crate in float: at most one level apart, and
    /// apart on under 10% of the pixels (measured: 0 on the 256/224 crops, 0.06-0.085 mean).
    const PIL_MAX_DIFF: f32 = 1.0;
    const PIL_MEAN_DIFF: f32 = 0.1;

    #[test]
    fn imagenet_normalisation_and_layouts() {
        // One 1x2 RGB image: pixels (255, 0, 51) and (0, 255, 102).
        let pixels = [255.0, 0.0, 51.0, 0.0, 255.0, 102.0];
        let pre = Preprocess {
            value_scale: ValueScale::Unit,
            mean: vec![0.5, 0.5, 0.2],
            std: vec![0.5, 0.25, 0.1],
            ..Default::default()
        };
        let (chw, shape) = normalize_hwc(&pixels, 1, 2, 3, &pre);
        assert_eq!(shape, vec![1, 3, 1, 2]);
        // R: (1-0.5)/0.5=1, (0-0.5)/0.5=-1; G: -2, 2; B: (0.2-0.2)/0.1=0, (0.4-0.2)/0.1=2
        let expect = [1.0, -1.0, -2.0, 2.0, 0.0, 2.0];
        for (a, b) in chw.iter().zip(expect) {
            assert!((a - b).abs() < 1e-5, "{chw:?}");
        }
        let (hwc, shape) = normalize_hwc(
            &pixels,
            1,
            2,
            3,
            &Preprocess {
                layout: Layout::Nhwc,
                ..pre
            },
        );
        assert_eq!(shape, vec![1, 1, 2, 3]);
        let expect = [1.0, -2.0, 0.0, -1.0, 2.0, 2.0];
        for (a, b) in hwc.iter().zip(expect) {
            assert!((a - b).abs() < 1e-5, "{hwc:?}");
        }
    }

    /// Decoded, resized, cropped and gray pixels against PIL's on the sample photos
    /// (`tests/data/pil_reference.npz`, from `tests/data/make_pil_reference.py`).
    #[test]
    fn preprocessing_matches_pil() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let reference = npy::read_npz(&root.join("tests/data/pil_reference.npz")).unwrap();
        assert_eq!(reference.len(), 9);
        for (name, array) in reference {
            let (photo, case) = name.split_once('_').unwrap();
            let pre = match case {
                "shorter256_crop224" => Preprocess {
                    resize_shorter: Some(256),
                    center_crop: Some((224, 224)),
                    ..Default::default()
                },
                "to48x64" => Preprocess {
                    resize_to: Some((48, 64)),
                    ..Default::default()
                },
                "gray_to28x28" => Preprocess {
                    resize_to: Some((28, 28)),
                    color: Color::Grayscale,
                    ..Default::default()
                },
                other => panic!("unknown case {other}"),
            };
            let path = root.join(format!("sample_data/photos/{photo}.png"));
            let (pixels, h, w, c) = decode_image(&path, &pre, 0).unwrap();
            let expected: Vec<f32> = match &array.data().unwrap() {
                TensorData::U8(v) => v.iter().map(|&x| f32::from(x)).collect(),
                other => panic!("{name}: {other:?}"),
            };
            let shape: Vec<usize> = if c == 1 { vec![h, w] } else { vec![h, w, c] };
            assert_eq!(shape, array.shape, "{name}");
            let diffs: Vec<f32> = pixels
                .iter()
                .zip(&expected)
                .map(|(a, b)| (a - b).abs())
                .collect();
            let max = diffs.iter().fold(0.0f32, |m, &d| m.max(d));
            let mean = diffs.iter().sum::<f32>() / diffs.len() as f32;
            eprintln!("{name}: max {max}, mean {mean}");
            assert!(
                max <= PIL_MAX_DIFF && mean <= PIL_MEAN_DIFF,
                "{name}: max {max}, mean {mean}"
            );
        }
    }

    /// A 40x20 (w x h) image whose red channel is the column index · 5 and green is 100.
    fn gradient_png(dir: &Path, name: &str) -> PathBuf {
        let img = image::RgbImage::from_fn(40, 20, |x, _| image::Rgb([(x * 5) as u8, 100, 0]));
        let path = dir.join(name);
        img.save(&path).unwrap();
        path
    }

    #[test]
    fn letterbox_text_lines_and_oversize_crops_pad_where_the_image_is_not() {
        let dir = tempfile::tempdir().unwrap();
        let png = gradient_png(dir.path(), "g.png");
        let green = |px: &[f32], h: usize, w: usize, y: usize, x: usize| {
            assert!(y < h && x < w);
            px[(y * w + x) * 3 + 1]
        };
        // Letterbox into 32x32: r = min(32/20, 32/40) = 0.8, image 32x16 at rows 8..24.
        let pre = Preprocess {
            letterbox: Some((32, 32)),
            pad_value: 114.0,
            ..Default::default()
        };
        let (px, h, w, _) = decode_image(&png, &pre, 0).unwrap();
        assert_eq!((h, w), (32, 32));
        for (y, expected) in [
            (0, 114.0),
            (7, 114.0),
            (8, 100.0),
            (23, 100.0),
            (24, 114.0),
            (31, 114.0),
        ] {
            assert_eq!(green(&px, h, w, y, 16), expected, "row {y}");
        }
        // Text line 16x64: width ceil(16 · 40/20) = 32, padded on the right.
        let pre = Preprocess {
            pad_to_width: Some((16, 64)),
            pad_value: 127.5,
            ..Default::default()
        };
        let (px, h, w, _) = decode_image(&png, &pre, 0).unwrap();
        assert_eq!((h, w), (16, 64));
        assert_eq!(green(&px, h, w, 8, 31), 100.0);
        assert_eq!(green(&px, h, w, 8, 32), 127.5);
        // A 30x50 centre crop of the 20x40 image: centred, 5 pixels of padding on each side.
        let pre = Preprocess {
            center_crop: Some((30, 50)),
            ..Default::default()
        };
        let (px, h, w, _) = decode_image(&png, &pre, 0).unwrap();
        assert_eq!((h, w), (30, 50));
        assert_eq!(green(&px, h, w, 4, 25), 0.0);
        assert_eq!(green(&px, h, w, 5, 5), 100.0);
        assert_eq!(green(&px, h, w, 24, 44), 100.0);
        assert_eq!(green(&px, h, w, 25, 44), 0.0);
        assert_eq!(green(&px, h, w, 15, 45), 0.0);
        // Two resizes at once are refused.
        let both = Preprocess {
            letterbox: Some((32, 32)),
            resize_to: Some((32, 32)),
            ..Default::default()
        };
        assert!(both.check(3).is_err());
    }

    #[test]
    fn augmentation_adds_calibration_variants_only() {
        let dir = tempfile::tempdir().unwrap();
        gradient_png(dir.path(), "a.png");
        gradient_png(dir.path(), "b.png");
        let desc = DatasetDesc {
            source: Source::ImageFolder {
                path: dir.path().display().to_string(),
                labels: Labels::None,
            },
            preprocess: Preprocess {
                value_scale: ValueScale::Byte,
                ..Default::default()
            },
            calibration: Split::default(),
            evaluation: Split::default(),
            augment: 3,
        };
        let data = Dataset::from_desc(desc, Path::new(""), Path::new("d.ron")).unwrap();
        assert_eq!(data.indices(Purpose::Calibration).unwrap(), 0..6);
        assert_eq!(data.indices(Purpose::Evaluation).unwrap(), 0..2);
        // Sample 3 = image 1, variant 1: mirrored (red falls from left to right).
        let (shape, plain) = data.sample(1).unwrap().first_f32();
        let (_, mirrored) = data.sample(3).unwrap().first_f32();
        assert_eq!(shape, vec![1, 3, 20, 40]);
        assert_eq!(plain[0], 0.0);
        assert_eq!(mirrored[0], 195.0);
        // Variant 2, the top-left 80% crop: 32x16.
        let (shape, _) = data.sample(4).unwrap().first_f32();
        assert_eq!(shape, vec![1, 3, 16, 32]);
        assert!(data.sample(6).is_err());
    }

    #[test]
    fn resize_and_crop_arithmetic_follows_torchvision() {
        // torchvision: Resize(256) of 500x375 (w x h) gives int(256 * 500 / 375) = 341 wide.
        assert_eq!(resized_size(500, 375, 256), (341, 256));
        assert_eq!(resized_size(375, 500, 256), (256, 341));
        // CenterCrop(224) of 341: int(round(117 / 2)) = round(58.5) = 58 (half to even).
        assert_eq!(crop_offset(341, 224), 58);
        // of 343: round(59.5) = 60.
        assert_eq!(crop_offset(343, 224), 60);
        assert_eq!(crop_offset(256, 224), 16);
    }

    #[test]
    fn byte_scale_with_one_mean_for_all_channels() {
        let pre = Preprocess {
            mean: vec![127.0],
            std: vec![128.0],
            ..Default::default()
        };
        let (v, _) = normalize_hwc(&[255.0, 127.0, 0.0], 1, 1, 3, &pre);
        assert_eq!(v, vec![1.0, 0.0, -127.0 / 128.0]);
    }
}
