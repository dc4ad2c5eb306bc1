import DEECore
import Testing

@Suite("JSONValue")
struct JSONValueTests {
    @Test func canonicalSortsKeysAndHasNoWhitespace() {
        let v: JSONValue = ["b": 1, "a": ["z": true, "y": nil], "c": [3, 2, 1], "A": "x"]
        #expect(v.canonical == #"{"A":"x","a":{"y":null,"z":true},"b":1,"c":[3,2,1]}"#)
    }

    @Test func canonicalScalars() {
        #expect(JSONValue.null.canonical == "null")
        #expect(JSONValue.bool(true).canonical == "true")
        #expect(JSONValue.bool(false).canonical == "false")
        #expect(JSONValue.int(-42).canonical == "-42")
        #expect(JSONValue.double(1.5).canonical == "1.5")
        #expect(JSONValue.double(2.0).canonical == "2", "whole doubles print as integers")
        #expect(JSONValue.double(-0.25).canonical == "-0.25")
        #expect(JSONValue.double(.infinity).canonical == "null")
        #expect(JSONValue.double(.nan).canonical == "null")
        #expect(JSONValue.array([]).canonical == "[]")
        #expect(JSONValue.object([:]).canonical == "{}")
        #expect(JSONValue.string("").canonical == #""""#)
    }

    /// Integers are printed digit by digit: every width, both signs, and the extremes.
    @Test func canonicalIntegers() {
        var rng = SplitMix64(seed: 7)
        var samples: [Int] = [0, 9, 10, -1, -9, -10, 99, 100, 1_234_567_890, .max, .min, .max - 1, .min + 1]
        for _ in 0..<2000 { samples.append(Int(bitPattern: UInt(rng.next())) >> Int(rng.next() % 63)) }
        for i in samples { #expect(JSONValue.int(i).canonical == String(i)) }
    }

    @Test func canonicalEscaping() {
        #expect(JSONValue.string("a\"b").canonical == #""a\"b""#)
        #expect(JSONValue.string("a\\b").canonical == #""a\\b""#)
        #expect(JSONValue.string("l1\nl2\r\t").canonical == #""l1\nl2\r\t""#)
        #expect(JSONValue.string("\u{01}\u{1F}").canonical == #""\u0001\u001f""#)
        #expect(JSONValue.string("\u{0}").canonical == #""\u0000""#)
        #expect(JSONValue.string("é/✓ 😀").canonical == "\"é/✓ 😀\"", "non-ASCII and / are kept as they are")
        #expect(JSONValue.object(["k\"ey": 1]).canonical == #"{"k\"ey":1}"#)
    }

    @Test func canonicalKeyOrderIsByCodeUnitsNotLocale() {
        let v: JSONValue = ["b": 1, "B": 2, "_": 3, "10": 4, "9": 5]
        #expect(v.canonical == #"{"10":4,"9":5,"B":2,"_":3,"b":1}"#)
    }

    @Test func parse() throws {
        let v = try #require(JSONValue.parse(#"{"a":[1,2.5,true,null,"x"],"b":{"c":-3}}"#))
        #expect(v == ["a": [1, .double(2.5), true, nil, "x"], "b": ["c": -3]])
        #expect(JSONValue.parse("  [ ]  ") == [])
        #expect(JSONValue.parse("{}") == .object([:]))
        #expect(JSONValue.parse(#""text""#) == "text")
        #expect(JSONValue.parse("null") == .null)
        #expect(JSONValue.parse("9007199254740993") == .int(9_007_199_254_740_993))
    }

    @Test func parseKeepsBooleansAndNumbersApart() {
        #expect(JSONValue.parse("true") == .bool(true))
        #expect(JSONValue.parse("1") == .int(1))
        #expect(JSONValue.parse("0") == .int(0))
        #expect(JSONValue.parse("[0,1,false,true]") == [0, 1, false, true])
    }

    @Test(arguments: ["", "not json", "{", "{'a':1}", "{\"a\" 1}", "tru", "\"unterminated"])
    func parseRejects(_ text: String) {
        #expect(JSONValue.parse(text) == nil)
    }

    @Test func roundTripThroughCanonical() throws {
        let v: JSONValue = [
            "s": "line\nbreak \"quoted\" \\ \u{07} é 😀", "i": -12345, "big": .int(Int.max), "t": true, "f": false,
            "n": nil, "arr": [1, "two", [3], ["four": 4]], "half": .double(0.5),
        ]
        let back = try #require(JSONValue.parse(v.canonical))
        #expect(back == v)
        #expect(back.canonical == v.canonical)
    }

    @Test func accessors() {
        #expect(JSONValue.double(3.0).int == 3)
        #expect(JSONValue.double(3.5).int == nil)
        #expect(JSONValue.int(3).number == 3.0)
        #expect(JSONValue.string("3").int == nil)
        #expect(JSONValue.string("x").string == "x")
        #expect(JSONValue.int(1).string == nil)
        #expect(JSONValue.int(1).bool == nil)
        #expect(JSONValue.null.isNull)
        #expect(JSONValue.object(["a": 1]).object?["a"] == 1)
        #expect(JSONValue.array([1]).array == [1])
        #expect(JSONValue.string("x").text == "x")
        #expect(JSONValue.object(["b": 1, "a": 2]).text == #"{"a":2,"b":1}"#)
        #expect(JSONValue.int(1).typeName == "number")
        #expect(JSONValue.double(1.5).typeName == "number")
        #expect(JSONValue.bool(true).typeName == "boolean")
        #expect(JSONValue.null.typeName == "null")
        #expect(JSONValue.array([]).typeName == "array")
        #expect(JSONValue.object([:]).typeName == "object")
        #expect(JSONValue.string("").typeName == "string")
        let s: String? = nil
        #expect(s.json == .null)
        #expect(Optional("x").json == "x")
    }
}
