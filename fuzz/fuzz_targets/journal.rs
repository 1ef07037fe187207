#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| gcbulk_tests::fuzz::journal(data));
