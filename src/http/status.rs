//! Response status codes the server sends.
//!
//! Every code's status line and small HTML page are built at compile time from one table
//! (a `macro_rules!` expansion of `concat!`), so writing a status costs a single slice copy
//! and nothing is formatted per response.

macro_rules! statuses {
    ($($(#[$doc:meta])* $name:ident = $code:literal, $reason:literal;)*) => {
        /// Response status codes the server sends (reason phrases as in RFC 9110 §15).
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum Status {
            $($(#[$doc])* $name,)*
        }

        impl Status {
            /// Every status, in code order (for tests and exhaustive checks).
            pub const ALL: &'static [Status] = &[$(Status::$name,)*];

            /// Numeric code, e.g. `404` (for the access log).
            pub fn code(self) -> u16 {
                match self {
                    $(Status::$name => $code,)*
                }
            }

            /// Reason phrase, e.g. `Not Found`.
            pub fn reason(self) -> &'static str {
                match self {
                    $(Status::$name => $reason,)*
                }
            }

            /// Complete status line with CRLF, e.g. `HTTP/1.1 404 Not Found\r\n`; always
            /// HTTP/1.1, the highest version we support (RFC 9110 §6.2).
            pub fn status_line(self) -> &'static [u8] {
                match self {
                    $(Status::$name => concat!("HTTP/1.1 ", $code, " ", $reason, "\r\n").as_bytes(),)*
                }
            }

            /// Small `text/html` body naming the status, sent with error and redirect
            /// responses so browsers show something readable.
            pub fn page(self) -> &'static [u8] {
                match self {
                    $(Status::$name => concat!(
                        "<html><head><title>", $code, " ", $reason,
                        "</title></head><body><h1>", $code, " ", $reason,
                        "</h1></body></html>\n"
                    ).as_bytes(),)*
                }
            }
        }
    };
}

statuses! {
    /// 200: full representation.
    Ok = 200, "OK";
    /// 201: an upload was created (tus `POST`) or a file published by `PUT`.
    Created = 201, "Created";
    /// 204: answer to OPTIONS, or an upload request that needs no body in return.
    NoContent = 204, "No Content";
    /// 206: one or more byte ranges.
    PartialContent = 206, "Partial Content";
    /// 301: directory requested without its trailing slash.
    MovedPermanently = 301, "Moved Permanently";
    /// 304: the client's cached copy is current.
    NotModified = 304, "Not Modified";
    /// 308: a `PUT` upload is incomplete; `Range` says what is stored (Google's resumable
    /// upload convention, which scripts know).
    PermanentRedirect = 308, "Permanent Redirect";
    /// 400: malformed or ambiguous request; the connection closes.
    BadRequest = 400, "Bad Request";
    /// 401: an upload without valid credentials.
    Unauthorized = 401, "Unauthorized";
    /// 403: the file exists but may not be served.
    Forbidden = 403, "Forbidden";
    /// 404: no such file.
    NotFound = 404, "Not Found";
    /// 405: method other than GET, HEAD or OPTIONS.
    MethodNotAllowed = 405, "Method Not Allowed";
    /// 408: the request head did not arrive in time; the connection closes.
    RequestTimeout = 408, "Request Timeout";
    /// 409: an upload's offset does not match what is stored, or its name is taken.
    Conflict = 409, "Conflict";
    /// 410: the resource is gone for good.
    Gone = 410, "Gone";
    /// 412: an If-Match / If-Unmodified-Since precondition failed.
    PreconditionFailed = 412, "Precondition Failed";
    /// 413: the request body is larger than we are willing to drain; the connection closes.
    PayloadTooLarge = 413, "Content Too Large";
    /// 414: request target too long; the connection closes.
    UriTooLong = 414, "URI Too Long";
    /// 415: an upload append without its media type.
    UnsupportedMediaType = 415, "Unsupported Media Type";
    /// 416: no requested range overlaps the file.
    RangeNotSatisfiable = 416, "Range Not Satisfiable";
    /// 423: another request is writing to this upload.
    Locked = 423, "Locked";
    /// 429: the client exceeded a rate or connection limit.
    TooManyRequests = 429, "Too Many Requests";
    /// 431: request head larger than the limit, or too many fields; the connection closes.
    HeaderFieldsTooLarge = 431, "Request Header Fields Too Large";
    /// 460: tus `Upload-Checksum` mismatch: the bytes were not stored.
    ChecksumMismatch = 460, "Checksum Mismatch";
    /// 500: unexpected server-side failure (e.g. an I/O error reading the file).
    InternalServerError = 500, "Internal Server Error";
    /// 501: a request feature we do not implement (a transfer-coded body); closes.
    NotImplemented = 501, "Not Implemented";
    /// 503: overloaded or shutting down.
    ServiceUnavailable = 503, "Service Unavailable";
    /// 505: a protocol major version other than 1; the connection closes.
    VersionNotSupported = 505, "HTTP Version Not Supported";
    /// 507: no space left for an upload; what is stored stays and can be resumed.
    InsufficientStorage = 507, "Insufficient Storage";
}

impl Status {
    /// Whether a response with this status must close the connection: after these the
    /// request framing (or the client) can no longer be trusted.
    pub fn closes_connection(self) -> bool {
        matches!(
            self,
            Status::BadRequest
                | Status::RequestTimeout
                | Status::PayloadTooLarge
                | Status::UriTooLong
                | Status::HeaderFieldsTooLarge
                | Status::NotImplemented
                | Status::VersionNotSupported
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_lines_are_consistent() {
        for &s in Status::ALL {
            let line = s.status_line();
            let expect = format!("HTTP/1.1 {} {}\r\n", s.code(), s.reason());
            assert_eq!(line, expect.as_bytes());
            assert!((200..600).contains(&s.code()));
        }
        assert_eq!(
            Status::NotFound.status_line(),
            b"HTTP/1.1 404 Not Found\r\n"
        );
        assert_eq!(Status::ALL.len(), 29);
    }

    #[test]
    fn codes_are_sorted_and_unique() {
        assert!(Status::ALL.windows(2).all(|w| w[0].code() < w[1].code()));
    }

    #[test]
    fn page_names_status() {
        assert_eq!(
            Status::NotFound.page(),
            b"<html><head><title>404 Not Found</title></head><body><h1>404 Not Found</h1></body></html>\n"
        );
    }

    #[test]
    fn closing_statuses() {
        let closing: Vec<u16> = Status::ALL
            .iter()
            .filter(|s| s.closes_connection())
            .map(|s| s.code())
            .collect();
        assert_eq!(closing, [400, 408, 413, 414, 431, 501, 505]);
    }
}
