//! The `readback` capture path: an asynchronous PBO ring with fences.
//!
//! Each submitted frame is read into the next pixel-pack buffer with `glReadPixels`, which
//! with a PBO bound only *queues* the copy, and a fence is placed behind it. Completed copies
//! are mapped as soon as their fence has signalled, checked without waiting both right after
//! the copy is queued (software GL and fast GPUs finish it at once, so the frame leaves in the
//! same call) and at the start of every later call. A naive ring that always maps frame N−1
//! while N renders would add a whole frame interval of latency; this one never waits and never
//! holds a finished frame back.
//!
//! GL's rows run bottom-up; the consumer copies them top-down (`Frame::rows_top_down`), so the
//! flip costs nothing beyond the copy it needs anyway.

use std::ffi::c_void;

use super::{
    GL_ALREADY_SIGNALED, GL_BGRA, GL_CONDITION_SATISFIED, GL_MAP_READ_BIT, GL_PACK_ALIGNMENT,
    GL_PACK_ROW_LENGTH, GL_PIXEL_PACK_BUFFER, GL_PIXEL_PACK_BUFFER_BINDING, GL_STREAM_READ,
    GL_UNSIGNED_BYTE, GL_WAIT_FAILED, GLsync, GLuint, GlError, GlFns, GlSource, ReadBinding,
};

/// Frames that may be in flight on the GPU at once.
pub const RING_SIZE: usize = 3;

/// A finished frame, mapped from its PBO: BGRA (the format drivers read back without
/// converting), rows bottom-up as GL stores them.
pub struct Frame<'a> {
    /// Tightly packed BGRA, `height` rows of `width * 4` bytes, bottom row first.
    pub bottom_up: &'a [u8],
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
}

impl Frame<'_> {
    /// The rows top row first, as video wants them.
    pub fn rows_top_down(&self) -> impl Iterator<Item = &[u8]> {
        self.bottom_up.chunks_exact(self.width as usize * 4).rev()
    }
}

struct Slot {
    pbo: GLuint,
    capacity: usize,
    fence: Option<GLsync>,
    width: u32,
    height: u32,
}

/// What happened to a submitted frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Queued {
    /// The copy is queued (and may already have been delivered).
    Yes,
    /// Every slot still waits for the GPU: the frame was not taken.
    RingFull,
}

/// The PBO ring. Lives on the render thread.
pub struct ReadbackRing {
    fns: GlFns,
    slots: Vec<Slot>,
    /// Slot the next frame goes into.
    next: usize,
    /// Slot whose frame is the oldest still in flight (delivery keeps submission order).
    oldest: usize,
    in_flight: usize,
    /// Framebuffer used to read a host texture.
    scratch_fbo: GLuint,
}

impl ReadbackRing {
    /// Creates the ring's GL objects in the current context.
    pub fn new(fns: GlFns) -> Result<Self, GlError> {
        let mut pbos = [0 as GLuint; RING_SIZE];
        let mut fbo = 0;
        // SAFETY: out-pointers sized for RING_SIZE buffer names and one framebuffer name.
        unsafe {
            (fns.gen_buffers)(RING_SIZE as i32, pbos.as_mut_ptr());
            (fns.gen_framebuffers)(1, &mut fbo);
        }
        fns.check("creating PBOs")?;
        let slots = pbos
            .iter()
            .map(|&pbo| Slot {
                pbo,
                capacity: 0,
                fence: None,
                width: 0,
                height: 0,
            })
            .collect();
        Ok(ReadbackRing {
            fns,
            slots,
            next: 0,
            oldest: 0,
            in_flight: 0,
            scratch_fbo: fbo,
        })
    }

    /// Queues the copy of the frame in `source`, then delivers every finished frame, oldest
    /// first, to `deliver`. Never waits for the GPU.
    pub fn capture(
        &mut self,
        source: GlSource,
        width: u32,
        height: u32,
        deliver: &mut dyn FnMut(Frame<'_>),
    ) -> Result<Queued, GlError> {
        self.fns.clear_errors();
        self.deliver_finished(deliver)?;
        if self.in_flight == RING_SIZE {
            return Ok(Queued::RingFull);
        }
        self.queue_copy(source, width, height)?;
        self.deliver_finished(deliver)?;
        Ok(Queued::Yes)
    }

    fn queue_copy(&mut self, source: GlSource, width: u32, height: u32) -> Result<(), GlError> {
        let fns = self.fns;
        let size = width as usize * height as usize * 4;
        let _read = ReadBinding::bind(&fns, source, self.scratch_fbo)?;
        let slot = &mut self.slots[self.next];
        let previous_pbo = fns.integer(GL_PIXEL_PACK_BUFFER_BINDING) as GLuint;
        let previous_alignment = fns.integer(GL_PACK_ALIGNMENT);
        let previous_row_length = fns.integer(GL_PACK_ROW_LENGTH);
        // SAFETY: `slot.pbo` is our buffer name; with a PBO bound, glReadPixels writes into it
        // at offset 0 (the null pointer is an offset, not memory), and the buffer holds
        // `size` bytes because it is (re)allocated to at least that just before.
        unsafe {
            (fns.bind_buffer)(GL_PIXEL_PACK_BUFFER, slot.pbo);
            if slot.capacity < size {
                (fns.buffer_data)(
                    GL_PIXEL_PACK_BUFFER,
                    size as isize,
                    std::ptr::null(),
                    GL_STREAM_READ,
                );
                slot.capacity = size;
            }
            (fns.pixel_storei)(GL_PACK_ALIGNMENT, 4);
            (fns.pixel_storei)(GL_PACK_ROW_LENGTH, 0);
            (fns.read_pixels)(
                0,
                0,
                width as i32,
                height as i32,
                GL_BGRA,
                GL_UNSIGNED_BYTE,
                std::ptr::null_mut(),
            );
            (fns.pixel_storei)(GL_PACK_ALIGNMENT, previous_alignment);
            (fns.pixel_storei)(GL_PACK_ROW_LENGTH, previous_row_length);
            (fns.bind_buffer)(GL_PIXEL_PACK_BUFFER, previous_pbo);
            slot.fence = Some((fns.fence_sync)(super::GL_SYNC_GPU_COMMANDS_COMPLETE, 0));
            // Without a flush the fence may never reach the GPU and never signal.
            (fns.flush)();
        }
        fns.check("queueing the PBO readback")?;
        slot.width = width;
        slot.height = height;
        self.next = (self.next + 1) % RING_SIZE;
        self.in_flight += 1;
        Ok(())
    }

    /// Maps and delivers finished frames in submission order, stopping at the first one the
    /// GPU has not finished.
    fn deliver_finished(&mut self, deliver: &mut dyn FnMut(Frame<'_>)) -> Result<(), GlError> {
        let fns = self.fns;
        while self.in_flight > 0 {
            let slot = &mut self.slots[self.oldest];
            let Some(fence) = slot.fence else { break };
            // SAFETY: `fence` came from glFenceSync in this context and is deleted only below.
            let state = unsafe { (fns.client_wait_sync)(fence, 0, 0) };
            if state == GL_WAIT_FAILED {
                return Err(GlError::Call {
                    code: state,
                    during: "checking a readback fence",
                });
            }
            if state != GL_ALREADY_SIGNALED && state != GL_CONDITION_SATISFIED {
                break;
            }
            // SAFETY: the fence is done with; the PBO holds width*height*4 bytes written by
            // the finished copy; the mapping is read-only, used only inside `deliver`, and
            // unmapped before the buffer is touched again.
            unsafe {
                (fns.delete_sync)(fence);
                slot.fence = None;
                let previous = fns.integer(GL_PIXEL_PACK_BUFFER_BINDING) as GLuint;
                (fns.bind_buffer)(GL_PIXEL_PACK_BUFFER, slot.pbo);
                let len = slot.width as usize * slot.height as usize * 4;
                let ptr: *mut c_void =
                    (fns.map_buffer_range)(GL_PIXEL_PACK_BUFFER, 0, len as isize, GL_MAP_READ_BIT);
                if !ptr.is_null() {
                    let bytes = std::slice::from_raw_parts(ptr.cast::<u8>(), len);
                    deliver(Frame {
                        bottom_up: bytes,
                        width: slot.width,
                        height: slot.height,
                    });
                    (fns.unmap_buffer)(GL_PIXEL_PACK_BUFFER);
                }
                (fns.bind_buffer)(GL_PIXEL_PACK_BUFFER, previous);
                if ptr.is_null() {
                    fns.check("mapping a PBO")?;
                }
            }
            self.oldest = (self.oldest + 1) % RING_SIZE;
            self.in_flight -= 1;
        }
        Ok(())
    }

    /// Deletes the GL objects. Needs the context current.
    pub fn destroy(&mut self) {
        let fns = self.fns;
        for slot in &mut self.slots {
            if let Some(fence) = slot.fence.take() {
                // SAFETY: a fence we created and have not deleted.
                unsafe { (fns.delete_sync)(fence) };
            }
            // SAFETY: a buffer name we generated.
            unsafe { (fns.delete_buffers)(1, &slot.pbo) };
        }
        self.slots.clear();
        // SAFETY: a framebuffer name we generated.
        unsafe { (fns.delete_framebuffers)(1, &self.scratch_fbo) };
        self.in_flight = 0;
    }
}
