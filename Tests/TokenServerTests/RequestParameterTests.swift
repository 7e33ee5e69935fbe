import JOSE
import Testing

@testable import TokenServer

@Suite("Request body parameters")
struct RequestParameterTests {
    private func request(_ contentType: String?, _ body: String) -> HTTPRequest {
        HTTPRequest(
            method: "POST",
            path: "/oauth2/introspect",
            headers: contentType.map { [("Content-Type", $0)] } ?? [],
            body: Array(body.utf8)
        )
    }

    @Test("form bodies decode percent escapes and + as space")
    func form() throws {
        let parameters = try request(
            "application/x-www-form-urlencoded",
            "token=a%2Bb+c&token_type_hint=access_token&empty=&flag"
        )
        .formOrJSONParameters()
        #expect(parameters == ["token": "a+b c", "token_type_hint": "access_token", "empty": "", "flag": ""])
    }

    @Test("a form parameter sent twice is refused naming it")
    func formDuplicate() {
        #expect {
            try request("application/x-www-form-urlencoded", "token=a&token=b").formOrJSONParameters()
        } throws: { error in
            guard let error = error as? HTTPError else { return false }
            return error.status == 400 && error.error == "invalid_request"
                && error.errorDescription.contains("\"token\"")
                && error.errorDescription.contains("more than once")
        }
    }

    @Test(
        "malformed percent-encoding in a form is refused",
        arguments: ["token=%", "token=%4", "token=%zz", "token=%ff", "=x"]
    )
    func formMalformed(_ body: String) {
        #expect(throws: HTTPError.invalidRequest("")) {
            try request("application/x-www-form-urlencoded", body).formOrJSONParameters()
        }
    }

    @Test("JSON objects of strings are parameters; charset=utf-8 is tolerated")
    func json() throws {
        let parameters = try request(
            "Application/JSON; charset=UTF-8",
            #"{"token":"abc","token_type_hint":"refresh_token"}"#
        )
        .formOrJSONParameters()
        #expect(parameters == ["token": "abc", "token_type_hint": "refresh_token"])
    }

    @Test("a JSON member that is not a string is refused naming the member and its type")
    func jsonWrongType() {
        #expect {
            try request("application/json", #"{"token":"abc","refresh":true}"#).formOrJSONParameters()
        } throws: { error in
            guard let error = error as? HTTPError else { return false }
            return error.status == 400 && error.errorDescription.contains("\"refresh\"")
                && error.errorDescription.contains("must be a string") && error.errorDescription.contains("boolean")
        }
    }

    @Test(
        "duplicate JSON members, deep nesting, non-objects and malformed JSON are 400",
        arguments: [
            #"{"token":"a","token":"b"}"#, String(repeating: "[", count: 100) + String(repeating: "]", count: 100),
            #"["token"]"#, #"{"token":"a""#, "", "{\"token\":\"\\ud800\"}",
        ]
    )
    func jsonMalformed(_ body: String) {
        #expect(throws: HTTPError.invalidRequest("")) {
            try request("application/json", body).formOrJSONParameters()
        }
    }

    @Test(
        "other media types, other charsets, and a body without Content-Type are 415 naming what is accepted",
        arguments: [
            ("text/plain", "token=a"), ("multipart/form-data; boundary=x", "--x--"),
            ("application/json; charset=latin1", "{}"),
        ] as [(String?, String)] + [(nil, "token=a")]
    )
    func unsupportedMediaType(_ contentType: String?, _ body: String) {
        #expect {
            try request(contentType, body).formOrJSONParameters()
        } throws: { error in
            guard let error = error as? HTTPError else { return false }
            return error.status == 415 && error.error == "unsupported_media_type"
                && (error.errorDescription.contains("application/json") || error.errorDescription.contains("UTF-8"))
        }
    }

    @Test("an empty body without Content-Type has no parameters")
    func emptyBody() throws {
        #expect(try request(nil, "").formOrJSONParameters() == [:])
    }

    @Test("jsonObject accepts only application/json objects")
    func jsonObject() throws {
        let object = try request("application/json", #"{"sub":"u1","refresh":true}"#).jsonObject()
        #expect(object["refresh"] == .bool(true))
        #expect(throws: HTTPError.unsupportedMediaType("")) {
            try request("application/x-www-form-urlencoded", "sub=u1").jsonObject()
        }
        #expect(throws: HTTPError.invalidRequest("")) { try request(nil, "").jsonObject() }
        #expect(throws: HTTPError.invalidRequest("")) { try request("application/json", "42").jsonObject() }
    }

    @Test("error responses are OAuth-style JSON")
    func errorResponse() throws {
        let response = HTTPError.invalidRequest("the token parameter is missing").response
        #expect(response.status == 400)
        #expect(response.header("content-type") == "application/json")
        let body = try JSONParser().parse(response.body)
        #expect(body["error"] == "invalid_request")
        #expect(body["error_description"] == "the token parameter is missing")
    }

    /// `formOrJSONParameter(name)` builds only the value it is asked for; for every body it
    /// must answer what `formOrJSONParameters()[name]` answers, errors (and their wording)
    /// included.
    @Test("one parameter read in place answers exactly as the full parameter parse, over a corpus of bodies")
    func singleParameterMatchesFullParse() {
        let pieces = [
            "token=abc", "token=", "token", "=x", "token_type_hint=access_token", "a=1", "a=2", "token=a%2Bb",
            "token=a+b", "token=%zz", "token=%C3%A9", "token=é", "x=\u{0}", "t%6Fken=y", "token=a=b", "", "&",
            "token=-dash.dot_under~", "b=", "c=3", "d=4",
        ]
        var bodies: [String] = []
        for first in pieces {
            bodies.append(first)
            for second in pieces {
                bodies.append(first + "&" + second)
                for third in ["", "&", "&a=9", "&token=z", "&&e=5&f=6"] { bodies.append(first + "&" + second + third) }
            }
        }
        var generator = SystemRandomNumberGenerator()
        let alphabet = Array("tokenab=&%+2B_-.é".unicodeScalars)
        for _ in 0..<2_000 {
            let length = Int.random(in: 0...24, using: &generator)
            bodies.append(
                String(String.UnicodeScalarView((0..<length).map { _ in alphabet.randomElement(using: &generator)! }))
            )
        }
        let types: [String?] = [
            "application/x-www-form-urlencoded", "Application/X-WWW-Form-Urlencoded",
            "application/x-www-form-urlencoded; charset=utf-8", "application/x-www-form-urlencoded; charset=latin1",
            "application/json", "text/plain", nil,
        ]
        for contentType in types {
            for body in bodies {
                let request = request(contentType, body)
                for name in ["token", "token_type_hint", "a"] {
                    let full: Result<String?, HTTPError>
                    do throws(HTTPError) { full = .success(try request.formOrJSONParameters()[name]) } catch {
                        full = .failure(error)
                    }
                    let single: Result<String?, HTTPError>
                    do throws(HTTPError) { single = .success(try request.formOrJSONParameter(name)) } catch {
                        single = .failure(error)
                    }
                    #expect(
                        single == full && "\(single)" == "\(full)",
                        "Content-Type \(contentType ?? "none"), body \(body.debugDescription), \(name)"
                    )
                }
            }
        }
    }

    @Test("the form scanner yields every non-empty piece in order, its name and value still encoded")
    func formPieces() {
        let body = Array("a=1&&b%41=x+y&flag&=v&c=d=e&".utf8)
        var pieces: [(Int, String, String)] = []
        body.withUnsafeBytes { bytes in
            PercentDecoding.forEachPiece(bytes) { piece in
                pieces.append(
                    (
                        piece.position, String(decoding: bytes[piece.name], as: UTF8.self),
                        String(decoding: bytes[piece.value], as: UTF8.self)
                    )
                )
            }
        }
        #expect(pieces.map(\.0) == [1, 2, 3, 4, 5])
        #expect(pieces.map(\.1) == ["a", "b%41", "flag", "", "c"])
        #expect(pieces.map(\.2) == ["1", "x+y", "", "v", "d=e"])
    }

    @Test("a form with more names than are kept in place still refuses a repeated one")
    func manyNames() throws {
        let names = (0..<40).map { "p\($0)" }
        let body = names.map { "\($0)=v" }.joined(separator: "&")
        let all = try request("application/x-www-form-urlencoded", body).formOrJSONParameters()
        #expect(all.count == 40)
        #expect(try request("application/x-www-form-urlencoded", body).formOrJSONParameter("p39") == "v")
        for repeated in ["p3", "p39", "p%33"] {
            #expect(throws: HTTPError.invalidRequest("")) {
                try request("application/x-www-form-urlencoded", body + "&\(repeated)=w").formOrJSONParameter("p0")
            }
        }
    }
}
