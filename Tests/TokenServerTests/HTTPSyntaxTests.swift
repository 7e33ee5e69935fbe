import CodedErrors
import HTTPSyntax
import NIOCore
import Testing
import TokenClient

@testable import TokenServer

/// One set of HTTP syntax rules: what the request parser refuses in a request, the response
/// writer refuses in a response and the client refuses to send.
@Suite("HTTP syntax")
struct HTTPSyntaxTests {
    @Test("the tchar bit set is RFC 9110's tchar")
    func tcharSet() {
        let tchar = Set(
            Array("!#$%&'*+-.^_`|~".utf8) + Array(UInt8(ascii: "a")...UInt8(ascii: "z"))
                + Array(UInt8(ascii: "A")...UInt8(ascii: "Z")) + Array(UInt8(ascii: "0")...UInt8(ascii: "9"))
        )
        var low: UInt64 = 0
        var high: UInt64 = 0
        for byte in tchar { if byte < 64 { low |= 1 << UInt64(byte) } else { high |= 1 << UInt64(byte - 64) } }
        #expect(HTTPSyntax.tcharLow == low)
        #expect(HTTPSyntax.tcharHigh == high)
        for byte in UInt8.min...UInt8.max {
            #expect(HTTPSyntax.isTokenCharacter(byte) == tchar.contains(byte), "byte \(byte)")
        }
    }

    /// Header fields, good and bad: names with separators, spaces, controls and non-ASCII;
    /// values with every kind of control character, DEL, obs-text and surrounding spaces.
    static let fields: [(name: String, value: String)] = {
        let names = [
            "X-A", "x-token_scope", "X!#$%&'*+.^_`|~1", "", "X A", "X\tA", "X(A)", "X\"A", "X/A", "X;A", "X=A",
            "X@A", "X[A]", "X{A}", "X,A", "Xé", "X\u{7F}", "X\u{1}", "X?A", "X\\A",
        ]
        let values = [
            "v", "", "two words", "tab\there", "é obs-text", "~!@#$%^&*()_+{}|:\"<>?", " leading", "trailing ",
            "a\r\nInjected: 1", "a\nb", "a\rb", "nul\u{0}", "bell\u{7}", "del\u{7F}", "esc\u{1B}[0m", "\u{1F}",
        ]
        return names.map { ($0, "v") } + values.map { ("X-A", $0) }
    }()

    @Test("a header the parser refuses in a request is refused in a response and by the client")
    func oneHeaderRule() {
        for (name, value) in Self.fields {
            // The parser accepts a field when the request parses and carries exactly this
            // name and value (surrounding spaces are optional whitespace, not the value's).
            var parser = HTTPRequestParser(maxHeadBytes: 16384, maxBodyBytes: 1024)
            var bytes = ByteBufferAllocator().buffer(string: "GET / HTTP/1.1\r\nHost: a\r\n\(name): \(value)\r\n\r\n")
            parser.append(&bytes)
            let parsed: Bool
            if case .request(let request) = parser.next() {
                parsed = request.headers.contains { $0.name == name && $0.value == HTTPSyntax.trimmed(value) }
            } else {
                parsed = false
            }
            let written = HTTPResponseWriter.headersAreValid([(name, value)])
            let sent: Bool
            do {
                _ = try UnixHTTPClient(path: "/nonexistent/tokend.sock").send(
                    method: "GET",
                    path: "/",
                    headers: [(name, value)]
                )
                sent = true
            } catch {
                // Refused before anything is sent, or sent and the socket is not there.
                sent = error.code != .invalidRequest
            }
            #expect(
                parsed == written,
                "parser \(parsed), response writer \(written): \(name.debugDescription): \(value.debugDescription)"
            )
            #expect(
                sent == written,
                "client \(sent), response writer \(written): \(name.debugDescription): \(value.debugDescription)"
            )
        }
        // The corpus holds both verdicts.
        #expect(Self.fields.contains { HTTPResponseWriter.headersAreValid([$0]) })
        #expect(Self.fields.contains { !HTTPResponseWriter.headersAreValid([$0]) })
    }

    @Test("list-valued fields split on commas, trimmed and lowercased, empty elements dropped")
    func listElements() {
        #expect(HTTPSyntax.listElements(" Keep-Alive ,, CLOSE\t,") == ["keep-alive", "close"])
        #expect(HTTPSyntax.listElements("") == [])
        #expect(HTTPSyntax.equalsIgnoringCase("Content-Type", "content-TYPE"))
        #expect(!HTTPSyntax.equalsIgnoringCase("Content-Type", "content-typ"))
        #expect(!HTTPSyntax.equalsIgnoringCase("[", "{"))
    }
}
