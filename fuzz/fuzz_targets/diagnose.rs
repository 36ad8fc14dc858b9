//! Fuzz target `diagnose`: see `fixer::fuzzing::diagnose` for the input format and
//! the properties checked.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Err(violation) = fixer::fuzzing::diagnose(data) {
        panic!("diagnose: {violation}");
    }
});
