//! Fuzz target `playbook_load`: see `fixer::fuzzing::playbook_load` for the input format and
//! the properties checked.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Err(violation) = fixer::fuzzing::playbook_load(data) {
        panic!("playbook_load: {violation}");
    }
});
