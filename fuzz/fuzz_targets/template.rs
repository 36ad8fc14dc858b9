//! Fuzz target `template`: see `fixer::fuzzing::template` for the input format and
//! the properties checked.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Err(violation) = fixer::fuzzing::template(data) {
        panic!("template: {violation}");
    }
});
