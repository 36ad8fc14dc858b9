//! Fuzz target `env_edit`: see `fixer::fuzzing::env_edit` for the input format and
//! the properties checked.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Err(violation) = fixer::fuzzing::env_edit(data) {
        panic!("env_edit: {violation}");
    }
});
