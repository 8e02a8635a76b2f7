//! File extension → `Content-Type`.
//!
//! A sorted static table searched by binary search on the lowercased last extension: no heap,
//! no hashing, no start-up work, and the order is checked by a unit test. The extension is
//! lowercased into a small stack buffer; anything longer than the longest known extension
//! cannot match and is answered with `application/octet-stream`, as is everything unknown.

/// Type sent for unknown extensions: browsers download rather than sniff or render it.
pub const DEFAULT: &str = "application/octet-stream";

/// Longest extension worth looking up (`webmanifest` has 11 bytes).
const MAX_EXT: usize = 16;

/// Known extensions, lowercase and sorted bytewise.
static TABLE: &[(&[u8], &str)] = &[
    (b"7z", "application/x-7z-compressed"),
    (b"aac", "audio/aac"),
    (b"apk", "application/vnd.android.package-archive"),
    (b"appimage", "application/vnd.appimage"),
    (b"asc", "application/pgp-signature"),
    (b"avi", "video/x-msvideo"),
    (b"avif", "image/avif"),
    (b"bmp", "image/bmp"),
    (b"bz2", "application/x-bzip2"),
    (b"crate", "application/gzip"),
    (b"css", "text/css; charset=utf-8"),
    (b"csv", "text/csv; charset=utf-8"),
    (b"deb", "application/vnd.debian.binary-package"),
    (b"dmg", "application/x-apple-diskimage"),
    (b"doc", "application/msword"),
    (
        b"docx",
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    ),
    (b"epub", "application/epub+zip"),
    (b"exe", "application/vnd.microsoft.portable-executable"),
    (b"flac", "audio/flac"),
    (b"gif", "image/gif"),
    (b"gz", "application/gzip"),
    (b"heic", "image/heic"),
    (b"htm", "text/html; charset=utf-8"),
    (b"html", "text/html; charset=utf-8"),
    (b"ico", "image/x-icon"),
    (b"img", "application/x-raw-disk-image"),
    (b"iso", "application/x-iso9660-image"),
    (b"jar", "application/java-archive"),
    (b"jpeg", "image/jpeg"),
    (b"jpg", "image/jpeg"),
    (b"js", "text/javascript; charset=utf-8"),
    (b"json", "application/json"),
    (b"lz", "application/x-lzip"),
    (b"lzma", "application/x-lzma"),
    (b"m3u8", "application/vnd.apple.mpegurl"),
    (b"m4a", "audio/mp4"),
    (b"m4v", "video/mp4"),
    (b"map", "application/json"),
    (b"md", "text/markdown; charset=utf-8"),
    (b"md5", "text/plain; charset=utf-8"),
    (b"mjs", "text/javascript; charset=utf-8"),
    (b"mkv", "video/x-matroska"),
    (b"mov", "video/quicktime"),
    (b"mp3", "audio/mpeg"),
    (b"mp4", "video/mp4"),
    (b"mpd", "application/dash+xml"),
    (b"mpeg", "video/mpeg"),
    (b"mpg", "video/mpeg"),
    (b"msi", "application/x-msi"),
    (b"ods", "application/vnd.oasis.opendocument.spreadsheet"),
    (b"odt", "application/vnd.oasis.opendocument.text"),
    (b"oga", "audio/ogg"),
    (b"ogg", "audio/ogg"),
    (b"ogv", "video/ogg"),
    (b"opus", "audio/ogg"),
    (b"otf", "font/otf"),
    (b"pdf", "application/pdf"),
    (b"png", "image/png"),
    (b"ppt", "application/vnd.ms-powerpoint"),
    (
        b"pptx",
        "application/vnd.openxmlformats-officedocument.presentationml.presentation",
    ),
    (b"rar", "application/vnd.rar"),
    (b"rpm", "application/x-rpm"),
    (b"rtf", "application/rtf"),
    (b"sha1", "text/plain; charset=utf-8"),
    (b"sha256", "text/plain; charset=utf-8"),
    (b"sha512", "text/plain; charset=utf-8"),
    (b"sig", "application/pgp-signature"),
    (b"svg", "image/svg+xml"),
    (b"tar", "application/x-tar"),
    (b"tgz", "application/gzip"),
    (b"tif", "image/tiff"),
    (b"tiff", "image/tiff"),
    (b"ts", "video/mp2t"),
    (b"ttf", "font/ttf"),
    (b"txt", "text/plain; charset=utf-8"),
    (b"wasm", "application/wasm"),
    (b"wav", "audio/wav"),
    (b"weba", "audio/webm"),
    (b"webm", "video/webm"),
    (b"webmanifest", "application/manifest+json"),
    (b"webp", "image/webp"),
    (b"whl", "application/zip"),
    (b"woff", "font/woff"),
    (b"woff2", "font/woff2"),
    (b"xls", "application/vnd.ms-excel"),
    (
        b"xlsx",
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    ),
    (b"xml", "application/xml"),
    (b"xz", "application/x-xz"),
    (b"zip", "application/zip"),
    (b"zst", "application/zstd"),
];

/// `Content-Type` for a file called `name`, chosen by its last extension (ASCII
/// case-insensitive); [`DEFAULT`] if it has none or an unknown one.
pub fn for_name(name: &[u8]) -> &'static str {
    let Some(dot) = memchr::memrchr(b'.', name) else {
        return DEFAULT;
    };
    let ext = &name[dot + 1..];
    let mut buf = [0u8; MAX_EXT];
    let Some(lower) = buf.get_mut(..ext.len()) else {
        return DEFAULT;
    };
    for (l, &b) in lower.iter_mut().zip(ext) {
        *l = b.to_ascii_lowercase();
    }
    match TABLE.binary_search_by(|&(e, _)| e.cmp(lower)) {
        Ok(i) => TABLE[i].1,
        Err(_) => DEFAULT,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_sorted_lowercase_and_unique() {
        for pair in TABLE.windows(2) {
            assert!(
                pair[0].0 < pair[1].0,
                "{:?} before {:?}",
                pair[0].0,
                pair[1].0
            );
        }
        for &(ext, mime) in TABLE {
            assert!(!ext.is_empty() && ext.len() <= MAX_EXT);
            assert!(ext
                .iter()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()));
            assert!(!mime.is_empty() && mime != DEFAULT);
        }
    }

    #[test]
    fn common_types() {
        assert_eq!(for_name(b"index.html"), "text/html; charset=utf-8");
        assert_eq!(for_name(b"a.htm"), "text/html; charset=utf-8");
        assert_eq!(for_name(b"app.mjs"), "text/javascript; charset=utf-8");
        assert_eq!(for_name(b"readme.txt"), "text/plain; charset=utf-8");
        assert_eq!(for_name(b"font.woff2"), "font/woff2");
        assert_eq!(for_name(b"seg.ts"), "video/mp2t");
        assert_eq!(for_name(b"x.tar.gz"), "application/gzip");
        assert_eq!(for_name(b"x.tar.gz.asc"), "application/pgp-signature");
        assert_eq!(for_name(b"SHA256SUMS.sha256"), "text/plain; charset=utf-8");
        assert_eq!(for_name(b"site.webmanifest"), "application/manifest+json");
        assert_eq!(for_name(b"a.7z"), "application/x-7z-compressed");
    }

    #[test]
    fn case_insensitive() {
        assert_eq!(for_name(b"PHOTO.JPG"), "image/jpeg");
        assert_eq!(for_name(b"Movie.Mp4"), "video/mp4");
        assert_eq!(for_name(b"x.AppImage"), "application/vnd.appimage");
    }

    #[test]
    fn unknown_or_missing_extension() {
        for name in [
            &b"Makefile"[..],
            b"",
            b".",
            b"trailing.",
            b"x.unknown",
            b"x.verylongextensionname",
            b"x.html~",
            b"dir.html/file",
            b"x.\xff\xfe",
        ] {
            assert_eq!(
                for_name(name),
                DEFAULT,
                "{:?}",
                String::from_utf8_lossy(name)
            );
        }
    }
}
