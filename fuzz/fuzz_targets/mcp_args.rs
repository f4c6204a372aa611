#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| switchboard_mcp::fuzz::tool_call(data));
