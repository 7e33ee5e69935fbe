import FuzzSupport

runFuzzer { fuzzHTTP($0, $1) }
