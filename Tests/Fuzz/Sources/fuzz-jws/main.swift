import FuzzSupport

runFuzzer { fuzzJWS($0, $1) }
