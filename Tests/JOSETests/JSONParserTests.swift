import JOSE
import Testing

@Suite("Strict JSON parser")
struct JSONParserTests {
    static func parse(_ bytes: [UInt8], maxDepth: Int = 16) throws -> JSONValue {
        try JSONParser(maxDepth: maxDepth).parse(bytes)
    }

    static func expectKind(
        _ kind: JSONParser.Error.Kind,
        _ bytes: [UInt8],
        sourceLocation: SourceLocation = #_sourceLocation
    ) {
        let error = #expect(throws: JSONParser.Error.self, "\(bytes)", sourceLocation: sourceLocation) {
            try parse(bytes)
        }
        #expect(
            error?.kind == kind,
            "\(String(decoding: bytes, as: UTF8.self).debugDescription)",
            sourceLocation: sourceLocation
        )
    }

    @Test(
        "invalid UTF-8 is refused, in plain strings and next to escapes",
        arguments: [
            [0x22, 0xFF, 0x22], [0x22, 0xC0, 0xAF, 0x22], [0x22, 0xED, 0xA0, 0x80, 0x22], [0x22, 0xE2, 0x80, 0x22],
            [0x22, 0x5C, 0x6E, 0xFE, 0x22], [0x22, 0xF4, 0x90, 0x80, 0x80, 0x22],
            [0x7B, 0x22, 0x61, 0xFF, 0x22, 0x3A, 0x31, 0x7D],
        ] as [[UInt8]]
    )
    func invalidUTF8(bytes: [UInt8]) {
        JSONParserTests.expectKind(.invalidUTF8, bytes)
    }

    @Test(
        "lone and mismatched surrogate escapes are refused",
        arguments: [
            "\"\\ud800\"", "\"\\udc00\"", "\"\\uD800x\"", "\"\\ud800\\u0041\"", "\"\\ud800\\ud800\"",
            "\"\\udfff\\ud800\"",
            "\"\\ud800\\\"",
        ]
    )
    func loneSurrogates(text: String) {
        JSONParserTests.expectKind(.syntax, Array(text.utf8))
    }

    @Test(
        "unescaped control characters in strings are refused",
        arguments: [0x00, 0x01, 0x09, 0x0A, 0x0D, 0x1F] as [UInt8]
    )
    func controlCharacters(byte: UInt8) {
        JSONParserTests.expectKind(.syntax, [0x22, 0x61, byte, 0x62, 0x22])
        // Also after an escape has switched the parser to its slow path.
        JSONParserTests.expectKind(.syntax, [0x22, 0x5C, 0x6E, byte, 0x22])
    }

    @Test(
        "anything after the top-level value is refused",
        arguments: [
            "{} x", "{}{}", "1 2", "[1]]", "\"a\"\"b\"", "{}\u{0}", "true false", "{},",
        ]
    )
    func trailingGarbage(text: String) {
        JSONParserTests.expectKind(.syntax, Array(text.utf8))
    }

    @Test(
        "numbers outside the JSON grammar are refused",
        arguments: [
            "01", "-01", "00", "1.", ".5", "-", "+1", "1e", "1e+", "1.e5", "0x10", "NaN", "Infinity", "-Infinity",
            "1_000",
            "[01]", "{\"exp\":1.}", "{\"exp\":.5}", "- 1",
        ]
    )
    func badNumbers(text: String) {
        JSONParserTests.expectKind(.syntax, Array(text.utf8))
    }

    @Test(
        "other grammar violations are refused",
        arguments: [
            "", " ", "[1,]", "{\"a\":1,}", "{'a':1}", "{a:1}", "[1 2]", "{\"a\" 1}", "\"abc", "\"\\x41\"", "\"\\u12\"",
            "\"\\u12G4\"", "tru", "nul", "True", "[", "{", "{\"a\":}", "\u{FEFF}{}", "\u{A0}{}", "\u{0C}{}", "/* */{}",
        ]
    )
    func grammarViolations(text: String) {
        JSONParserTests.expectKind(.syntax, Array(text.utf8))
    }

    @Test("valid escapes decode to the right characters")
    func escapes() throws {
        let value = try JSONParserTests.parse(Array(#""\"\\\/\b\f\n\r\t\u0041\u00e9\u20AC""#.utf8))
        #expect(value == .string("\"\\/\u{08}\u{0C}\n\r\tAé€"))
    }

    @Test("surrogate pairs decode to one scalar outside the BMP")
    func surrogatePairs() throws {
        #expect(try JSONParserTests.parse(Array(#""\ud83d\ude00""#.utf8)) == .string("😀"))
        #expect(try JSONParserTests.parse(Array(#""\uD834\uDD1E""#.utf8)) == .string("𝄞"))
        #expect(try JSONParserTests.parse(Array(#""\udbff\udfff""#.utf8)) == .string("\u{10FFFF}"))
        // Raw UTF-8 of the same characters parses the same.
        #expect(try JSONParserTests.parse(Array("\"😀𝄞é\"".utf8)) == .string("😀𝄞é"))
    }

    @Test("\\u0000 is a valid escape and stays in the string")
    func nulEscape() throws {
        #expect(try JSONParserTests.parse(Array(#""a\u0000b""#.utf8)) == .string("a\u{0}b"))
    }

    @Test(
        "numbers in the grammar are accepted and keep their text",
        arguments: [
            "0", "-0", "1", "-1", "0.5", "1e10", "1E-5", "1.25e+3", "1700000000", "253402300799",
            "123456789012345678901234567890",
        ]
    )
    func goodNumbers(text: String) throws {
        let value = try JSONParserTests.parse(Array(text.utf8))
        #expect(value.numberValue?.text == text)
    }

    @Test("whitespace is allowed around values and tokens")
    func whitespace() throws {
        let value = try JSONParserTests.parse(Array(" \t\r\n{ \"a\" : [ 1 , true , null ] }\n ".utf8))
        #expect(value == .object(JSONObject([("a", [1, true, nil])])))
    }

    @Test("duplicate member names are refused, also when spelled with escapes")
    func duplicates() {
        for text in [#"{"a":1,"a":2}"#, #"{"a":1,"\u0061":2}"#, #"{"x":{"a":1,"a":1}}"#, #"[{"a":1,"b":2,"a":3}]"#] {
            JSONParserTests.expectKind(.duplicateMember, Array(text.utf8))
        }
    }

    /// `{"k0":0,"k1":1,…}` with `count` members, then `extra` members as written.
    static func object(members count: Int, then extra: [String] = []) -> [UInt8] {
        let members = (0..<count).map { "\"k\($0)\":\($0)" } + extra
        return Array(("{" + members.joined(separator: ",") + "}").utf8)
    }

    @Test("an object of maxMembers members parses; one more is refused with a message naming the limit")
    func memberLimit() throws {
        #expect(JSONParser.defaultMaxMembers == 1000)
        let atLimit = try JSONParserTests.parse(JSONParserTests.object(members: 1000))
        #expect(atLimit.objectValue?.count == 1000)
        #expect(atLimit.objectValue?.keys.last == "k999")
        #expect(atLimit["k500"] == 500)

        for text in [
            JSONParserTests.object(members: 1001),
            JSONParserTests.object(members: 7000),
            Array(#"{"a":"#.utf8) + JSONParserTests.object(members: 1001) + Array("}".utf8),
            Array("[".utf8) + JSONParserTests.object(members: 1001) + Array("]".utf8),
        ] {
            let error = #expect(throws: JSONParser.Error.self) { try JSONParserTests.parse(text) }
            #expect(error?.kind == .tooManyMembers)
            #expect(error?.description.contains("more than 1000 members") == true, "\(String(describing: error))")
        }

        // The limit is per object: many objects of 1000 members each are fine.
        let many =
            "["
            + Array(repeating: String(decoding: JSONParserTests.object(members: 1000), as: UTF8.self), count: 3)
            .joined(separator: ",") + "]"
        #expect(try JSONParserTests.parse(Array(many.utf8)).arrayValue?.count == 3)

        // A caller's own limit.
        #expect(throws: Never.self) { try JSONParser(maxMembers: 3).parse(JSONParserTests.object(members: 3)) }
        let small = #expect(throws: JSONParser.Error.self) {
            try JSONParser(maxMembers: 3).parse(JSONParserTests.object(members: 4))
        }
        #expect(small?.kind == .tooManyMembers)
        #expect(small?.description.contains("more than 3 members") == true)
    }

    @Test(
        "duplicates are refused at any position of a large object, whatever spelling the name has",
        arguments: [
            (999, #""k0":0"#),  // the last member repeats the first
            (999, #""k998":0"#),  // the last member repeats the one before it
            (9, #""k0":0"#),  // just past the small-object scan
            (8, #""k7":0"#),
            (7, #""k6":0"#),  // still within the small-object scan
            (500, #""k\u0032\u0035\u0030":0"#),  // "k250" spelled with escapes
            (500, #""\u006b499":0"#),
            (600, #""é":1,"e\u0301":2"#),  // canonically equivalent names
            (600, "\"e\u{301}\":1,\"\u{E9}\":2"),
        ] as [(Int, String)]
    )
    func duplicatesInLargeObjects(count: Int, extra: String) {
        JSONParserTests.expectKind(.duplicateMember, JSONParserTests.object(members: count, then: [extra]))
        // Also inside a nested object.
        let nested = Array(#"{"outer":"#.utf8) + JSONParserTests.object(members: count, then: [extra]) + Array("}".utf8)
        JSONParserTests.expectKind(.duplicateMember, nested)
    }

    @Test("the error for a duplicate in a large object names the member and where it is")
    func duplicateMessageInLargeObject() {
        let text = JSONParserTests.object(members: 900, then: [#""k3":0"#])
        let error = #expect(throws: JSONParser.Error.self) { try JSONParserTests.parse(text) }
        #expect(error?.kind == .duplicateMember)
        #expect(error?.message == #"duplicate member name "k3""#)
        #expect(error?.offset == text.count - #""k3":0}"#.utf8.count)
    }

    @Test("member order is kept as written")
    func memberOrder() throws {
        let value = try JSONParserTests.parse(Array(#"{"z":1,"a":2,"m":3}"#.utf8))
        #expect(value.objectValue?.keys == ["z", "a", "m"])
        #expect(value.compactText == #"{"z":1,"a":2,"m":3}"#)
    }

    @Test("nesting up to maxDepth is accepted and one level more is refused")
    func depthLimit() throws {
        for depth in [1, 8, 16] {
            let text = String(repeating: "[", count: depth) + String(repeating: "]", count: depth)
            #expect(throws: Never.self) { try JSONParserTests.parse(Array(text.utf8)) }
        }
        for depth in [17, 100, 10_000] {
            let text = String(repeating: "[", count: depth) + String(repeating: "]", count: depth)
            JSONParserTests.expectKind(.tooDeep, Array(text.utf8))
        }
        let objects = String(repeating: "{\"a\":", count: 17) + "1" + String(repeating: "}", count: 17)
        JSONParserTests.expectKind(.tooDeep, Array(objects.utf8))
        #expect(throws: Never.self) { try JSONParserTests.parse(Array("[[[1]]]".utf8), maxDepth: 3) }
        #expect(throws: JSONParser.Error.self) { try JSONParserTests.parse(Array("[[[[1]]]]".utf8), maxDepth: 3) }
    }

    @Test("error messages never quote string content")
    func messagesDoNotQuote() {
        let secret = "s3cr3t-value-that-must-not-leak"
        let error = #expect(throws: JSONParser.Error.self) {
            try JSONParserTests.parse(Array("{\"k\":\"\(secret)\",\"k\":1}x".utf8))
        }
        #expect(error?.description.contains(secret) == false)
    }

    @Test("compact serialisation escapes what JSON requires and round-trips")
    func serialisationRoundTrip() throws {
        let original = JSONValue.object(
            JSONObject([
                ("s", .string("quote \" backslash \\ newline \n nul \u{0} del \u{7F} ls \u{2028} é 😀")),
                ("n", -12), ("b", false), ("z", nil), ("a", [1, "x", [:]]),
            ])
        )
        let text = original.compactText
        #expect(!text.contains("\n"))
        #expect(try JSONParserTests.parse(Array(text.utf8)) == original)
        #expect(try JSONParserTests.parse(Array(original.prettyText().utf8)) == original)
    }
}
