import FuzzSupport

runFuzzer { fuzzJSON($0, $1) }
