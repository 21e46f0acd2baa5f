from twisted.application.service import ServiceMaker

uploadd = ServiceMaker("uploadd", "uploadd.tap", "The uploadd file server", "uploadd")
