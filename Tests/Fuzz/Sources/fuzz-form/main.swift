import FuzzSupport

runFuzzer { fuzzForm($0, $1) }
