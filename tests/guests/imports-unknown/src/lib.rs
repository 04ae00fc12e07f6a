//! A component importing an interface no Verge host provides: deploying it
//! must fail with 400 naming the import, and change nothing.

wit_bindgen::generate!({
    inline: "
        package test:unknown;
        interface missing { ping: func() -> u32; }
        world imports-unknown {
            import missing;
            export run: func() -> u32;
        }
    ",
});

struct Component;

impl Guest for Component {
    fn run() -> u32 {
        test::unknown::missing::ping()
    }
}

export!(Component);
