import DEECore
import Testing

@Suite("JSON parser")
struct JSONParserTests {
    @Test(arguments: [
        (#"{"a":[1,-2,3.5,1e3,true,false,null,"x"]}"#, JSONValue.object(["a": [1, -2, .double(3.5), .double(1000), true, false, nil, "x"]])),
        (#""\u00e9\n\t\"\\\/""#, JSONValue.string("é\n\t\"\\/")),
        (#""\ud83d\ude00""#, JSONValue.string("😀")),
        (" [ ] ", JSONValue.array([])),
        ("{}", JSONValue.object([:])),
        ("9223372036854775807", JSONValue.int(Int.max)),
        ("0", JSONValue.int(0)),
    ])
    func parses(text: String, expected: JSONValue) {
        #expect(JSONValue.parse(text) == expected)
    }

    @Test(arguments: [
        "", "{", "[1,]", "{\"a\":1,}", "01", "1.", ".5", "-", "1e", "tru", "nul", "\"abc", "\"\\x\"", "\"\\ud800\"",
        "\"\\udc00\"", "{\"a\" 1}", "[1 2]", "\"a\u{01}b\"", "{1:2}", "[1]x", "NaN", "Infinity", "1e999",
    ])
    func rejects(text: String) {
        #expect(JSONValue.parse(text) == nil)
    }

    @Test func nestingIsBounded() {
        #expect(JSONValue.parse(String(repeating: "[", count: 100) + String(repeating: "]", count: 100)) != nil)
        #expect(JSONValue.parse(String(repeating: "[", count: 100_000) + String(repeating: "]", count: 100_000)) == nil)
    }

    @Test func canonicalRoundTrip() {
        let text = #"{"b":[1,{"d":"\u0001\"","c":null}],"a":"é"}"#
        let v = JSONValue.parse(text)
        #expect(v?.canonical == #"{"a":"é","b":[1,{"c":null,"d":"\u0001\""}]}"#)
        #expect(JSONValue.parse(v!.canonical) == v)
    }
}
